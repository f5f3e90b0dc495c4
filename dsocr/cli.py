"""The ``dsocr`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dsocr.checkpoint import OFFICIAL_MODEL_ID, CheckpointError
from dsocr.documents import DEFAULT_DPI, DEFAULT_WORKERS, DocumentError, RenderPool, parse_page_ranges
from dsocr.pipeline import RETRY_NGRAM, OcrOptions
from dsocr.preprocess import MODES
from dsocr.prompts import PROMPTS

SAMPLE_PAGE = Path(__file__).parent / "samples" / "sample-page.png"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"dsocr: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsocr", description="DeepSeek-OCR: serve and run OCR on documents.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ocr = commands.add_parser(
        "ocr",
        help="OCR PDFs and images into Markdown and layout JSON",
        description=(
            "OCR documents (PDF, PNG, JPEG, TIFF), folders of them or glob patterns. With --out, each input INPUT "
            "gets INPUT.md, INPUT.json (layout blocks, token statistics, timings) and INPUT_images/ (figure crops) "
            "there; without it, the Markdown goes to stdout. A file that cannot be processed is reported and "
            "skipped; the exit status is 1 if any file or page failed."
        ),
    )
    ocr.add_argument("inputs", nargs="+", metavar="INPUT", help="file, folder or glob pattern")
    _add_model_options(ocr)
    _add_generation_options(ocr)
    ocr.add_argument("--pages", type=_page_ranges, default=None, help="pages to process, like 1-3,7 (default: all)")
    ocr.add_argument("--dpi", type=_positive_float, default=DEFAULT_DPI, help="PDF rendering resolution")
    ocr.add_argument("--out", type=Path, default=None, help="output folder (created if missing)")
    ocr.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS, help="PDF rendering processes")
    ocr.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="default: on a terminal")
    ocr.set_defaults(run=_run_ocr)

    checkpoint = commands.add_parser("checkpoint", help="make checkpoints")
    checkpoint_commands = checkpoint.add_subparsers(dest="checkpoint_command", required=True, metavar="KIND")
    tiny = checkpoint_commands.add_parser(
        "tiny", help="write a small deterministic random checkpoint in the official layout"
    )
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument(
        "--max-shard-bytes", type=int, default=None, help="split the weights into shards of at most this size"
    )
    tiny.set_defaults(run=_run_tiny)

    demo = commands.add_parser(
        "demo", help="OCR the bundled sample page into WORK_DIR/demo/ with the real model, or a tiny one offline"
    )
    demo.add_argument("--model", default=OFFICIAL_MODEL_ID)
    demo.add_argument(
        "--work-dir", type=Path, default=Path("out"), help="where the outputs and the offline tiny checkpoint go"
    )
    _add_generation_options(demo, max_new_tokens=64)
    demo.add_argument("--device", default="cpu")
    demo.set_defaults(run=_run_demo)
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=OFFICIAL_MODEL_ID, help="checkpoint directory or hub id[@revision]")
    parser.add_argument("--revision", default=None, help="hub revision (commit, tag or branch)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--dtype", choices=["fp32", "bf16", "fp16"], default=None, help="default: bf16 on CUDA, fp32 on CPU"
    )


def _add_generation_options(parser: argparse.ArgumentParser, max_new_tokens: int = 8192) -> None:
    parser.add_argument("--mode", choices=sorted(MODES), default="gundam")
    parser.add_argument("--prompt", default="markdown", help=f"one of {', '.join(PROMPTS)} or custom text")
    parser.add_argument("--ref", default=None, help="the text the 'locate' prompt looks for")
    parser.add_argument("--max-new-tokens", type=_positive, default=max_new_tokens)
    parser.add_argument("--max-tiles", type=int, default=6, help="largest Gundam tile count (the HF script uses 9)")
    parser.add_argument("--ngram-size", type=int, default=30, help="no-repeat n-gram size; 0 turns the rule off")
    parser.add_argument(
        "--ngram-window", type=int, default=90, help="generated tokens the no-repeat rule looks back over"
    )
    parser.add_argument(
        "--no-retry",
        action="store_true",
        help=f"do not retry pages that hit --max-new-tokens with the stricter {RETRY_NGRAM[0]}/{RETRY_NGRAM[1]} n-gram rule",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _page_ranges(text: str) -> str:
    """Check the syntax now; whether the pages exist is checked per document."""
    try:
        parse_page_ranges(text, page_count=sys.maxsize)
    except DocumentError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _ocr_options(args: argparse.Namespace) -> OcrOptions:
    return OcrOptions(
        mode=args.mode,
        prompt=args.prompt,
        ref=args.ref,
        max_new_tokens=args.max_new_tokens,
        max_tiles=args.max_tiles,
        ngram_size=args.ngram_size,
        ngram_window=args.ngram_window,
        retry_ngram=None if args.no_retry else RETRY_NGRAM,
    )


def _lineage(model) -> dict:
    """The ``model`` object of the output JSON."""
    return {"id": model.source.model_id, "revision": model.source.revision}


def _print_summary(run) -> None:
    summary = run.record["summary"]
    written = f" -> {run.written[0]}" if run.written else ""
    print(
        f"dsocr: {run.path}: {summary['pages']} page(s) ({summary['ok']} ok, {summary['incomplete']} incomplete, "
        f"{summary['failed']} failed), {summary['vision_tokens']} vision tokens, "
        f"{summary['generated_tokens']} generated, {summary['seconds']:.1f} s{written}",
        file=sys.stderr,
    )


def _run_ocr(args: argparse.Namespace) -> int:
    from dsocr.batch import describe_failure, find_inputs, ocr_file, output_stems
    from dsocr.inference import DTYPES, OcrModel

    paths, failures = find_inputs(args.inputs)
    for failure in failures:
        print(f"dsocr: {failure.input}: {failure.message}", file=sys.stderr)
    if not paths:
        return 2
    model = OcrModel.load(args.model, args.revision, args.device, DTYPES[args.dtype] if args.dtype else None)
    options, lineage = _ocr_options(args), _lineage(model)
    documents_with_failed_pages = []
    with RenderPool(workers=args.workers) as pool:
        for path, stem in zip(paths, output_stems(paths)):
            try:
                run = ocr_file(
                    model,
                    lineage,
                    pool,
                    path,
                    options,
                    pages=args.pages,
                    dpi=args.dpi,
                    out=args.out,
                    stem=stem,
                    progress=args.progress,
                )
            except (DocumentError, OSError) as error:
                failures.append(describe_failure(error, str(path)))
                print(f"dsocr: {path}: {failures[-1].message}", file=sys.stderr)
                continue
            if args.out is None:
                sys.stdout.write(run.markdown)
            summary = run.record["summary"]
            if summary["failed"]:
                documents_with_failed_pages.append(f"{path} ({summary['failed']} of {summary['pages']} pages)")
            _print_summary(run)
    if failures:
        print(f"dsocr: {len(failures)} input(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure.input}: [{failure.code}] {failure.message}", file=sys.stderr)
    if documents_with_failed_pages:
        print(f"dsocr: pages failed in: {', '.join(documents_with_failed_pages)}; see their JSON", file=sys.stderr)
    return 1 if failures or documents_with_failed_pages else 0


def _run_tiny(args: argparse.Namespace) -> int:
    from dsocr.tiny import write_tiny_checkpoint

    directory = write_tiny_checkpoint(args.directory, seed=args.seed, max_shard_bytes=args.max_shard_bytes)
    print(directory)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from dsocr.batch import ocr_file
    from dsocr.inference import OcrModel
    from dsocr.tiny import write_tiny_checkpoint

    try:
        model = OcrModel.load(args.model, device=args.device)
        print(f"dsocr demo: using {args.model}", file=sys.stderr)
    except CheckpointError as err:
        tiny = write_tiny_checkpoint(args.work_dir / "tiny-checkpoint")
        print(
            f"dsocr demo: {err}\ndsocr demo: falling back to the random tiny checkpoint {tiny}; "
            "its text is noise, the pipeline is real",
            file=sys.stderr,
        )
        model = OcrModel.load(str(tiny), device=args.device)
    with RenderPool(workers=1) as pool:
        run = ocr_file(
            model, _lineage(model), pool, SAMPLE_PAGE, _ocr_options(args), dpi=DEFAULT_DPI, out=args.work_dir / "demo"
        )
    sys.stdout.write(run.markdown)
    _print_summary(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
