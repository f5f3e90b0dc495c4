"""``dsocr eval``: a dataset through a model, a server or another engine's predictions, scored against its truth."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from dsocr.arguments import add_option_flags, options_from_arguments
from dsocr.engines import add_model_options, add_server_options, check_engine_arguments, open_recognizer


def add_eval(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Evaluate an OCR engine on a dataset (a folder with manifest.jsonl): each page through the same pipeline "
        "as `dsocr ocr` (--model here, or --server), or another engine's Markdown files (--predictions DIR, one "
        "per page). Writes OUT/metrics.json (CER, WER, normalized edit distance, loop and failure rates, tokens; "
        "byte-identical for the same inputs), timings.json, pages.jsonl and plots/."
    )
    parser.add_argument("--data", type=Path, required=True, help="the dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results (created if missing)")
    add_model_options(parser)
    add_server_options(parser)
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        metavar="DIR",
        help="score DIR/<source without suffix>.md (PDF pages: <name>_<page>.md) instead of running a model",
    )
    parser.add_argument(
        "--tokenizer",
        default=None,
        metavar="CHECKPOINT",
        help="count ground-truth tokens with this checkpoint's tokenizer for the compression ratio (default: the "
        "--model's own; without one, --server and --predictions report no compression ratio)",
    )
    parser.add_argument("--mlflow", default=None, metavar="URI", help="also log the run to this MLflow tracking URI")
    add_option_flags(parser)
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="default: on a terminal"
    )
    parser.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from dsocr.data.dataset import Dataset
    from dsocr.evaluation.runner import evaluate, recognize_dataset, score_predictions, token_counter

    dataset = Dataset.load(args.data)
    with contextlib.ExitStack() as resources:
        if args.predictions is not None:
            if args.model or args.server:
                raise ValueError(
                    "--predictions scores files already written; it cannot be combined with --model or --server"
                )
            if not args.predictions.is_dir():
                raise ValueError(f"--predictions {args.predictions}: no such folder")
            engine = {"kind": "predictions", "id": args.predictions.resolve().name}
            scores = score_predictions(
                dataset, args.predictions, count_tokens=token_counter(_tokenizer(args.tokenizer))
            )
            options = None
        else:
            check_engine_arguments(args)
            options = options_from_arguments(args)
            try:
                recognizer, lineage, concurrency = open_recognizer(args, resources)
            except ConnectionError as error:
                print(f"dsocr: error: {error}", file=sys.stderr)
                return 1
            engine = {"kind": "server" if args.server else "model", **_engine_identity(args, recognizer, lineage)}
            tokenizer = args.tokenizer or (None if args.server else recognizer)
            scores = recognize_dataset(
                dataset, recognizer, options, count_tokens=token_counter(_tokenizer(tokenizer)), concurrency=concurrency
            )
        evaluation = evaluate(dataset, scores, engine, options, args.progress)
    metrics = evaluation.write(args.out)
    if args.mlflow:
        from dsocr.tracking import log_evaluation, mlflow_errors

        with mlflow_errors():
            run_id = log_evaluation(args.mlflow, evaluation, args.out)
        print(f"dsocr eval: logged MLflow run {run_id}", file=sys.stderr)
    _print_summary(evaluation, metrics)
    return 1 if evaluation.summary["failed_rate"] == 1.0 else 0


def _engine_identity(args: argparse.Namespace, recognizer, lineage: dict) -> dict:
    """The model's name as given (a checkout-relative path stays relative), revision, weights' SHA-256, lineage."""
    if args.server:
        return lineage
    from dsocr.model.source import weights_sha256

    return {**lineage, "id": args.model or lineage["id"], "weights_sha256": weights_sha256(recognizer.source.path)}


def _tokenizer(tokenizer):
    """The tokenizer to count ground-truth tokens with: an OcrModel's, a checkpoint's by path, or None."""
    if tokenizer is None:
        return None
    if not isinstance(tokenizer, str):
        return tokenizer.tokenizer  # the OcrModel's own
    from dsocr.model.source import resolve
    from dsocr.model.tokenizer import Tokenizer

    return Tokenizer.from_dir(resolve(tokenizer).path)


def _print_summary(evaluation, metrics: Path) -> None:
    summary, timings = evaluation.summary, evaluation.timings
    print(
        f"dsocr eval: {summary['pages']} page(s): CER {summary['cer']['mean']:.4f} (median {summary['cer']['median']:.4f}, "
        f"p90 {summary['cer']['p90']:.4f}), NED {summary['ned']['mean']:.4f}, WER {summary['wer']['mean']:.4f}, "
        f"loops {summary['loop_rate']:.1%}, failed {summary['failed_rate']:.1%}, "
        f"{timings['pages_per_second'] or 0:.2f} pages/s -> {metrics}",
        file=sys.stderr,
    )
