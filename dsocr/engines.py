"""What recognises pages for a command (``dsocr ocr``, ``dsocr eval``): the model loaded here, or a server.

One set of flags (``--model/--revision/--device/--dtype`` or ``--server/--concurrency/--deadline``), one check
that they are not mixed, and one function that opens the engine they name.
"""

from __future__ import annotations

import argparse
import contextlib

from dsocr.arguments import positive, positive_float
from dsocr.contract import Recognizer
from dsocr.model.source import OFFICIAL_MODEL_ID

#: ``dsocr ocr --server`` defaults: enough pages in flight to keep a continuous-batching decoder full, and a
#: per-page limit well above what a full 8192-token page takes.
SERVER_CONCURRENCY = 16
SERVER_DEADLINE_S = 600.0


def resolve_model(model: str | None) -> str:
    """The checkpoint a ``--model`` names: ``models:/NAME@ALIAS`` (or ``/VERSION``) through the registry at
    ``MLFLOW_TRACKING_URI`` (or the default store) to its local copy; anything else as it is."""
    model = model or OFFICIAL_MODEL_ID
    if not model.startswith("models:/"):
        return model
    from dsocr.registry.registry import resolve_model_uri

    return resolve_model_uri(model)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    # None defaults, so that giving any of these together with --server can be told apart and refused.
    parser.add_argument(
        "--model",
        default=None,
        help=f"checkpoint directory, hub id[@revision] or registered models:/NAME@ALIAS (default: {OFFICIAL_MODEL_ID})",
    )
    parser.add_argument("--revision", default=None, help="hub revision (commit, tag or branch)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument(
        "--dtype", choices=["fp32", "bf16", "fp16"], default=None, help="default: bf16 on CUDA, fp32 on CPU"
    )


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=None,
        metavar="HOST:PORT",
        help="OCR on this dsocr Triton server (its gRPC address) instead of loading a model here",
    )
    parser.add_argument(
        "--concurrency",
        type=positive,
        default=None,
        help=f"with --server: pages on the server at once (default {SERVER_CONCURRENCY})",
    )
    parser.add_argument(
        "--deadline",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help=f"with --server: time limit of each page, retries included (default {SERVER_DEADLINE_S:g})",
    )


def model_lineage(model) -> dict:
    """The ``model`` object of the output JSON."""
    from dsocr.model.source import lineage_summary

    return {
        "id": model.source.model_id,
        "revision": model.source.revision,
        "lineage": lineage_summary(model.source.lineage),
    }


def check_engine_arguments(args: argparse.Namespace) -> None:
    if args.server is not None:
        local = {"--model": args.model, "--revision": args.revision, "--device": args.device, "--dtype": args.dtype}
        given = [option for option, value in local.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} cannot be combined with --server, which runs the server's model")
    else:
        remote = {"--concurrency": args.concurrency, "--deadline": args.deadline}
        given = [option for option, value in remote.items() if value is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} can only be used with --server")


def open_recognizer(args: argparse.Namespace, resources: contextlib.ExitStack) -> tuple[Recognizer, dict, int]:
    """What recognises the pages, its lineage for the JSON, and how many pages it takes at once."""
    if args.server is None:
        from dsocr.model.inference import DTYPES, OcrModel

        dtype = DTYPES[args.dtype] if args.dtype else None
        model = OcrModel.load(resolve_model(args.model), args.revision, args.device or "cpu", dtype)
        return model, model_lineage(model), 1
    from dsocr.client import OcrClient, lineage

    concurrency = args.concurrency or SERVER_CONCURRENCY
    server_lineage = lineage(args.server)  # also fails fast, before any page, when the server is out of reach
    client = OcrClient(args.server, deadline_s=args.deadline or SERVER_DEADLINE_S, max_in_flight=concurrency)
    return resources.enter_context(client), server_lineage, concurrency
