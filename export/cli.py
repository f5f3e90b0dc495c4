"""``dsocr export onnx|tensorrt`` and ``dsocr repository build``: the export toolchain's commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dsocr.arguments import override, parameter_overrides, positive
from dsocr.contract import VIEW_SIZES
from dsocr.export.metadata import TOLERANCE
from dsocr.triton.artifacts import ArtifactError
from dsocr.triton.repository import TARGET_FORMATS


def add_export(export: argparse.ArgumentParser) -> None:
    kinds = export.add_subparsers(dest="export_command", required=True, metavar="FORMAT")

    onnx = kinds.add_parser(
        "onnx",
        help="DeepEncoder for one view size as ONNX, checked against PyTorch",
        description=(
            "Export the encoder (SAM, CLIP, projector; position tables resized for the view) with a dynamic batch "
            "dimension, weights as external data. The file must pass onnx.checker and match PyTorch under ONNX "
            f"Runtime on random views (relative error within {TOLERANCE['fp32']:g} for fp32, {TOLERANCE['fp16']:g} "
            "for fp16), or nothing is written. OUT gets model.onnx, model.onnx.data and metadata.json."
        ),
    )
    onnx.add_argument("--model", required=True, help="checkpoint directory or hub id[@revision]")
    onnx.add_argument("--revision", default=None, help="hub revision (commit, tag or branch)")
    onnx.add_argument("--view", type=int, required=True, choices=VIEW_SIZES, help="view size in pixels")
    onnx.add_argument("--dtype", choices=list(TOLERANCE), default="fp32")
    onnx.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    onnx.set_defaults(run=_run_export_onnx)

    tensorrt = kinds.add_parser(
        "tensorrt",
        help="a TensorRT engine from an ONNX export (needs an NVIDIA GPU and `pip install 'dsocr[tensorrt]'`)",
        description=(
            "Build a TensorRT engine for this machine's GPU from a `dsocr export onnx` folder: FP16 (a strongly "
            "typed network from an fp16 export on TensorRT 10.12 and later), one optimisation profile over the "
            "batch, an optional timing cache, and a parity check against PyTorch. OUT gets model.plan and "
            "metadata.json."
        ),
    )
    tensorrt.add_argument("--onnx", type=Path, required=True, help="a folder written by `dsocr export onnx`")
    tensorrt.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    tensorrt.add_argument("--min-batch", type=positive, default=1)
    tensorrt.add_argument("--opt-batch", type=positive, default=8)
    tensorrt.add_argument("--max-batch", type=positive, default=32)
    tensorrt.add_argument("--timing-cache", type=Path, default=None, help="read if present, then updated")
    tensorrt.set_defaults(run=_run_export_tensorrt)


def add_repository(repository: argparse.ArgumentParser) -> None:
    actions = repository.add_subparsers(dest="repository_command", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="write the Triton model repository for a checkpoint, with its exported encoders",
        description=(
            "Write the model repository `dsocr serve --repository` runs: model_repository/ filled in for the "
            "checkpoint, plus encoder_<size> models for every view size (ONNX Runtime for --target cpu, TensorRT "
            "plans for --target gpu). Exports given with --artifacts must come from this checkpoint; missing "
            "view sizes are exported now (engines only on a machine with TensorRT and a GPU)."
        ),
    )
    add_repository_options(build)
    build.add_argument("--target", choices=list(TARGET_FORMATS), default="cpu")
    build.add_argument("--out", type=Path, required=True, help="a new or empty folder, or a previous build")
    build.set_defaults(run=_run_repository_build)


def add_repository_options(parser: argparse.ArgumentParser, model_required: bool = True) -> None:
    """What a repository is built from: shared by ``repository build`` and ``serve``."""
    parser.add_argument(
        "--model", required=model_required, help="checkpoint directory, hub id[@revision] or models:/NAME@ALIAS"
    )
    parser.add_argument("--revision", default=None, help="hub revision (commit, tag or branch)")
    parser.add_argument(
        "--artifacts",
        type=Path,
        nargs="+",
        default=[],
        metavar="DIR",
        help="folders from `dsocr export onnx` (cpu) or `dsocr export tensorrt` (gpu) to use instead of exporting",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        type=override,
        action="append",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="override a model parameter, like decode.max_running_pages=32 or encoder_view.threads=4 (repeatable)",
    )


def build_from_arguments(args: argparse.Namespace, out: Path, target: str) -> Path:
    from dsocr.engines import resolve_model
    from dsocr.export.repository import build_repository

    return build_repository(
        out,
        resolve_model(args.model),
        target,
        args.revision,
        parameter_overrides(args.overrides),
        args.artifacts,
        progress=lambda message: print(f"dsocr: {message}", file=sys.stderr, flush=True),
    )


def _run_export_onnx(args: argparse.Namespace) -> int:
    from dsocr.export.onnx import ExportError, export_onnx

    try:
        record = export_onnx(args.model, args.view, args.out, args.dtype, args.revision)
    except (ExportError, FileExistsError) as err:
        return _fail(err)
    _print_summary(args.out, record)
    return 0


def _run_export_tensorrt(args: argparse.Namespace) -> int:
    from dsocr.export.tensorrt import TensorRTUnavailable, build_engine

    try:
        record = build_engine(
            args.onnx,
            args.out,
            min_batch=args.min_batch,
            opt_batch=args.opt_batch,
            max_batch=args.max_batch,
            timing_cache=args.timing_cache,
        )
    except (TensorRTUnavailable, ArtifactError, FileExistsError, RuntimeError) as err:
        return _fail(err)
    _print_summary(args.out, record)
    return 0


def _run_repository_build(args: argparse.Namespace) -> int:
    from dsocr.triton.repository import check_repository

    try:
        repository = build_from_arguments(args, args.out, args.target)
        check_repository(repository, args.target)
    except (ArtifactError, FileExistsError, RuntimeError) as err:
        return _fail(err)
    print(f"dsocr repository build: {repository} (serve it with `dsocr serve --repository {repository}`)")
    return 0


def _print_summary(folder: Path, record: dict) -> None:
    parity = record["parity"]
    print(
        f"{folder}: {record['format']} {record['view']}px {record['dtype']}, relative error "
        f"{parity['relative_error']:.2e} (limit {parity['tolerance']:g})"
    )
    print(json.dumps({"metadata": str(folder / "metadata.json"), "parity": parity}, indent=2))


def _fail(err: Exception) -> int:
    print(f"dsocr: error: {err}", file=sys.stderr)
    return 1
