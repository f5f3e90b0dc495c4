#!/usr/bin/env bash
# Entrypoint of Dockerfile.triton: build the model repository for the mounted checkpoint once per GPU, TensorRT
# version and checkpoint, keep it on the cache volume, then run `dsocr serve` on it (which starts tritonserver,
# waits until ready, and drains in-flight requests on SIGTERM).
#
# Engines are built by `dsocr repository build --target gpu`, which runs `dsocr export onnx` + `dsocr export
# tensorrt` for every view size not given in DSOCR_ARTIFACTS; dsocr has no separate engine-cache option, so the
# cache is this script's: one finished repository per key under $DSOCR_CACHE/repositories/.
#
# Environment:
#   DSOCR_MODEL      checkpoint directory (default /models/checkpoint), a hub id[@revision] or models:/NAME@ALIAS
#   DSOCR_DEVICE     cuda (default) or cpu
#   DSOCR_ARTIFACTS  space-separated folders of prebuilt exports (`dsocr export tensorrt` for cuda, `dsocr export
#                    onnx` for cpu); view sizes missing from them are exported here
#   DSOCR_CACHE      cache volume (default /cache)
# Arguments are passed on to `dsocr serve` (e.g. --set decode.max_running_pages=32).
set -euo pipefail

MODEL=${DSOCR_MODEL:-/models/checkpoint}
DEVICE=${DSOCR_DEVICE:-cuda}
CACHE=${DSOCR_CACHE:-/cache}
TRITONSERVER=${DSOCR_TRITONSERVER:-/opt/tritonserver/bin/tritonserver}

log() { printf '[entrypoint] %s\n' "$*" >&2; }
die() {
	printf '[entrypoint] ERROR: %s\n' "$*" >&2
	exit 1
}

case $DEVICE in
cuda) target=gpu ;;
cpu) target=cpu ;;
*) die "DSOCR_DEVICE=$DEVICE: choose cuda or cpu" ;;
esac

# What the built repository depends on besides dsocr itself: engines are tied to the GPU architecture and the
# TensorRT version, and every export to the checkpoint's weights.
platform=cpu
if [ "$target" = gpu ]; then
	command -v nvidia-smi >/dev/null || die "DSOCR_DEVICE=cuda but nvidia-smi is missing: is the NVIDIA runtime on?"
	gpu=$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader | head -1) ||
		die "nvidia-smi sees no GPU"
	trt=$(python3 -c 'import tensorrt; print(tensorrt.__version__)') || die "the tensorrt module is not importable"
	# Triton loads plans with the image's libnvinfer: an engine built by another TensorRT would not load there.
	lib=$(ldconfig -p | awk '/libnvinfer\.so\.[0-9]/ { print $NF; exit }')
	if [ -n "$lib" ]; then
		libver=$(readlink -f "$lib" | sed -n 's/.*libnvinfer\.so\.//p')
		case $trt in "$libver"*) ;; *) die "tensorrt $trt (Python) differs from the image's libnvinfer $libver: rebuild the image with TENSORRT_VERSION=$libver" ;; esac
	fi
	platform="$gpu trt$trt"
fi
if [ -d "$MODEL" ]; then
	# Names, sizes and modification times: cheap, and a replaced checkpoint changes them.
	weights=$(cd "$MODEL" && find . -type f -printf '%P %s %T@\n' | sort | sha256sum | cut -c1-16)
else
	weights=$(printf '%s' "$MODEL" | sha256sum | cut -c1-16)
fi
key=$(printf '%s-%s' "$platform" "$weights" | tr -c 'A-Za-z0-9._-' '_')
repos=$CACHE/repositories
repo=$repos/$key
mkdir -p "$repos"

if [ -f "$repo.complete" ] && [ -d "$repo" ]; then
	log "using the cached repository $repo"
else
	log "building the $target repository for $MODEL into $repo (first start on this GPU and TensorRT: engines take minutes)"
	# Built beside the final folder and renamed into place, so that a pod killed mid-build leaves no half
	# repository that the next start would take for a finished one.
	staging=$repos/.$key.$(hostname).$$
	rm -rf "$staging"
	args=(--model "$MODEL" --target "$target" --out "$staging")
	if [ -n "${DSOCR_ARTIFACTS:-}" ]; then
		read -r -a artifacts <<<"$DSOCR_ARTIFACTS"
		args+=(--artifacts "${artifacts[@]}")
	fi
	dsocr repository build "${args[@]}"
	rm -rf "$repo"
	mv -T "$staging" "$repo"
	touch "$repo.complete"
fi

exec dsocr serve --repository "$repo" --device "$DEVICE" --host 0.0.0.0 --tritonserver "$TRITONSERVER" "$@"
