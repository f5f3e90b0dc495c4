#!/usr/bin/env bash
# Install the Debian packages the tests drive as real tools, through `make tools`:
#   prometheus, promtool                 package prometheus               (monitoring/ and tests/monitoring)
#   amtool, prometheus-alertmanager      package prometheus-alertmanager  (Debian names the server binary
#                                                                          prometheus-alertmanager)
#   chromium                             package chromium                 (the web demo's browser test; never a
#                                                                          browser Playwright downloads)
# Debian 12 gives prometheus 2.42, alertmanager 0.25, chromium 156.
#
# Needs: Debian 12 (or another apt-based system with the same package names), network access to its apt mirror,
# and root or sudo. No systemd: nothing here starts a service; the tests start the binaries on loopback ports.
# Installs only the packages whose commands are missing: a no-op when every command is on PATH.
set -euo pipefail

# command:package, one per command a test runs.
TOOLS=(
	prometheus:prometheus
	promtool:prometheus
	amtool:prometheus-alertmanager
	prometheus-alertmanager:prometheus-alertmanager
	chromium:chromium
)

log() { printf '[tools] %s\n' "$*" >&2; }
die() {
	printf '\n[tools] ERROR: %s\n' "$*" >&2
	exit 1
}

missing=()
for tool in "${TOOLS[@]}"; do
	command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -eq 0 ]; then
	log "Debian tools up to date ($(command -v prometheus), $(command -v amtool), $(command -v chromium))"
	exit 0
fi
mapfile -t PACKAGES < <(printf '%s\n' "${missing[@]}" | sort -u)

command -v apt-get >/dev/null ||
	die "the commands of ${PACKAGES[*]} are missing and there is no apt-get; install those packages by hand."

# apt-get needs root: use sudo when we are not root, and say so plainly when it is not there.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null ||
		die "installing ${PACKAGES[*]} needs root and sudo is not available; run as root: apt-get install ${PACKAGES[*]}"
	SUDO=(sudo)
fi

log "installing ${PACKAGES[*]} with apt-get"
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

for tool in "${TOOLS[@]}"; do
	command -v "${tool%%:*}" >/dev/null || die "apt-get installed ${PACKAGES[*]} but \`${tool%%:*}\` is not on PATH."
done
log "installed: $(prometheus --version 2>&1 | head -1); $(amtool --version 2>&1 | head -1); $(chromium --version)"
