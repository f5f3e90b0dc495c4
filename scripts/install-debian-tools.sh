#!/usr/bin/env bash
# Install Prometheus (prometheus, promtool) and Alertmanager (alertmanager, amtool) from Debian's
# packages, for the monitoring/ config and its tests (tests/monitoring). Run through `make tools`.
#
# Needs: Debian 12 (or another apt-based system with the same package names), network access to its
# apt mirror, and root or sudo. No systemd is needed: nothing here starts a service; the tests start
# the binaries themselves on loopback ports.
# A no-op when every tool is already on PATH.
#
# Produces (Debian 12: prometheus 2.42, prometheus-alertmanager 0.25):
#   prometheus, promtool                   package prometheus
#   prometheus-alertmanager, amtool        package prometheus-alertmanager (Debian names the server
#                                          binary prometheus-alertmanager, not alertmanager)
set -euo pipefail

PACKAGES=(prometheus prometheus-alertmanager)

log() { printf '[tools] %s\n' "$*" >&2; }
die() {
	printf '\n[tools] ERROR: %s\n' "$*" >&2
	exit 1
}

have_all() {
	command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v amtool >/dev/null &&
		{ command -v alertmanager >/dev/null || command -v prometheus-alertmanager >/dev/null; }
}

if have_all; then
	log "monitoring tools up to date ($(command -v prometheus), $(command -v amtool))"
	exit 0
fi

command -v apt-get >/dev/null ||
	die "prometheus/promtool/alertmanager/amtool are missing and there is no apt-get; install ${PACKAGES[*]} by hand."

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

have_all || die "apt-get installed ${PACKAGES[*]} but prometheus, promtool, alertmanager and amtool are not all on PATH."
log "installed: $(prometheus --version 2>&1 | head -1); $(amtool --version 2>&1 | head -1)"
