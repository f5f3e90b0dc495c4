"""The ``dsocr`` command: one entry point, one subcommand per job.

Each command's parser is filled in only when that command runs (or shows its help), by the function ``COMMANDS``
names, so ``dsocr --help`` imports none of the packages behind the commands (torch, the API, the exporter).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from pathlib import Path

from dsocr.arguments import add_option_flags, options_from_arguments, page_ranges, port, positive, positive_float
from dsocr.engines import add_model_options, add_server_options, check_engine_arguments, model_lineage, open_recognizer
from dsocr.model.source import OFFICIAL_MODEL_ID, CheckpointError

SAMPLE_PAGE = Path(__file__).parent / "samples" / "sample-page.png"

#: Each command: its one-line help, and the ``module:function`` that fills in its parser.
COMMANDS: dict[str, tuple[str, str]] = {
    "ocr": ("OCR PDFs and images into Markdown and layout JSON", "dsocr.cli:add_ocr"),
    "checkpoint": ("make checkpoints", "dsocr.cli:add_checkpoint"),
    "demo": (
        "OCR the bundled sample page into WORK_DIR/demo/ with the real model, or a tiny one offline",
        "dsocr.cli:add_demo",
    ),
    "health": ("check that a server OCRs a page end to end (exit status 0 if it does)", "dsocr.cli:add_health"),
    "export": ("export DeepEncoder to ONNX or a TensorRT engine", "dsocr.export.cli:add_export"),
    "repository": ("build Triton model repositories", "dsocr.export.cli:add_repository"),
    "data": ("make datasets (manifest.jsonl and pages) for training and evaluation", "dsocr.data.cli:add_data"),
    "eval": (
        "score an engine on a dataset: CER, WER, edit distance, loops, tokens (metrics.json, pages.jsonl, plots)",
        "dsocr.evaluation.cli:add_eval",
    ),
    "report": ("a Markdown table of `dsocr eval` results side by side", "dsocr.evaluation.report:add_report"),
    "registry": (
        "register checkpoints in MLflow's model registry and promote one past an accuracy gate",
        "dsocr.registry.cli:add_registry",
    ),
    "train": ("fine-tune a checkpoint (LoRA or full) on pages with ground truth", "dsocr.training.cli:add_train"),
    "serve": ("serve the model with Triton (gRPC, HTTP, metrics) until SIGINT or SIGTERM", "dsocr.cli:add_serve"),
    "api": (
        "serve the HTTP API (PDFs in, Markdown and JSON out) in front of a dsocr Triton server",
        "dsocr.api.cli:add_api",
    ),
    "web": ("the drag-and-drop demo (Streamlit) in front of the HTTP API", "dsocr.web.cli:add_web"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return args.run(args)
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"dsocr: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full parser of the command ``argv`` names (of every command when ``argv`` is None)."""
    parser = argparse.ArgumentParser(prog="dsocr", description="DeepSeek-OCR: serve and run OCR on documents.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = None if argv is None else next((arg for arg in argv if not arg.startswith("-")), "")
    for name, (summary, filler) in COMMANDS.items():
        command = commands.add_parser(name, help=summary)
        if chosen is None or name == chosen:
            module, function = filler.split(":")
            getattr(importlib.import_module(module), function)(command)
    return parser


def add_ocr(ocr: argparse.ArgumentParser) -> None:
    from dsocr.documents.rendering import DEFAULT_DPI, DEFAULT_WORKERS

    ocr.description = (
        "OCR documents (PDF, PNG, JPEG, TIFF), folders of them or glob patterns. With --out, each input INPUT "
        "gets INPUT.md, INPUT.json (layout blocks, token statistics, timings) and INPUT_images/ (figure crops) "
        "there; without it, the Markdown goes to stdout. A file that cannot be processed is reported and "
        "skipped; the exit status is 1 if any file or page failed."
    )
    ocr.add_argument("inputs", nargs="+", metavar="INPUT", help="file, folder or glob pattern")
    add_model_options(ocr)
    add_server_options(ocr)
    add_option_flags(ocr)
    ocr.add_argument("--pages", type=page_ranges, default=None, help="pages to process, like 1-3,7 (default: all)")
    ocr.add_argument("--dpi", type=positive_float, default=DEFAULT_DPI, help="PDF rendering resolution")
    ocr.add_argument("--out", type=Path, default=None, help="output folder (created if missing)")
    ocr.add_argument("--workers", type=positive, default=DEFAULT_WORKERS, help="PDF rendering processes")
    ocr.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="default: on a terminal")
    ocr.set_defaults(run=_run_ocr)


def add_checkpoint(checkpoint: argparse.ArgumentParser) -> None:
    kinds = checkpoint.add_subparsers(dest="checkpoint_command", required=True, metavar="KIND")
    tiny = kinds.add_parser("tiny", help="write a small deterministic random checkpoint in the official layout")
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument(
        "--max-shard-bytes", type=int, default=None, help="split the weights into shards of at most this size"
    )
    tiny.set_defaults(run=_run_tiny)
    reader = kinds.add_parser(
        "reader", help="write the tiny reader: the tiny architecture trained here (see its lineage.json)"
    )
    reader.add_argument("directory", type=Path)
    reader.set_defaults(run=_run_reader)


def add_demo(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--model", default=OFFICIAL_MODEL_ID)
    demo.add_argument(
        "--work-dir", type=Path, default=Path("out"), help="where the outputs and the offline tiny checkpoint go"
    )
    add_option_flags(demo, max_new_tokens=64)
    demo.add_argument("--device", default="cpu")
    demo.set_defaults(run=_run_demo)


def add_health(health: argparse.ArgumentParser) -> None:
    health.description = (
        "Deep health check of a dsocr Triton server: live, ready, and one tiny canary page through the whole "
        "ensemble within the deadline. Prints the finding; the exit status is 0 if healthy, 1 if not."
    )
    health.add_argument("--server", required=True, metavar="HOST:PORT", help="the server's gRPC address")
    health.add_argument(
        "--deadline", type=positive_float, default=10.0, metavar="SECONDS", help="time the whole check may take"
    )
    health.set_defaults(run=_run_health)


def add_serve(serve: argparse.ArgumentParser) -> None:
    from dsocr.api.cli import DEFAULT_PORT as API_PORT
    from dsocr.export.cli import add_repository_options

    serve.description = (
        "Build the Triton model repository for a checkpoint (as `dsocr repository build` does, for the cpu or "
        "gpu target by --device), or take one already built (--repository without --model), check it, and run "
        "tritonserver on it until SIGINT or SIGTERM, which drain in-flight requests and exit 0. Needs the "
        "tools from `make tools` (or --tritonserver)."
    )
    add_repository_options(serve, model_required=False)
    serve.add_argument(
        "--repository",
        type=Path,
        default=None,
        help="with --model: where to build the model repository (default: a temporary one); without: a repository "
        "from `dsocr repository build` to serve as it is",
    )
    serve.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="picks the cpu or gpu model configs")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--grpc-port", type=port, default=8001)
    serve.add_argument("--http-port", type=port, default=8000)
    serve.add_argument("--metrics-port", type=port, default=8002)
    serve.add_argument("--tritonserver", default=None, help="the tritonserver binary (default: .tools/, then PATH)")
    serve.add_argument("--log-file", type=Path, default=None, help="server log (default: a new temporary file)")
    serve.add_argument("--startup-timeout", type=positive_float, default=600, help="seconds to wait for readiness")
    serve.add_argument("--with-api", action="store_true", help="also run the HTTP API (dsocr api) on this server")
    serve.add_argument("--api-port", type=port, default=API_PORT, help="with --with-api: the HTTP API's port")
    serve.set_defaults(run=_run_serve)


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
    from dsocr.documents.batch import describe_failure, find_inputs, ocr_file, output_stems
    from dsocr.documents.errors import DocumentError
    from dsocr.documents.rendering import RenderPool

    check_engine_arguments(args)
    paths, failures = find_inputs(args.inputs)
    for failure in failures:
        print(f"dsocr: {failure.input}: {failure.message}", file=sys.stderr)
    if not paths:
        return 2
    options = options_from_arguments(args)
    documents_with_failed_pages = []
    with contextlib.ExitStack() as resources:
        try:
            recognizer, lineage, concurrency = open_recognizer(args, resources)
        except ConnectionError as error:  # the server is out of reach (the client's ServerUnavailable)
            print(f"dsocr: error: {error}", file=sys.stderr)
            return 1
        pool = resources.enter_context(RenderPool(workers=args.workers))
        for path, stem in zip(paths, output_stems(paths)):
            try:
                run = ocr_file(
                    recognizer,
                    lineage,
                    pool,
                    path,
                    options,
                    pages=args.pages,
                    dpi=args.dpi,
                    out=args.out,
                    stem=stem,
                    progress=args.progress,
                    concurrency=concurrency,
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


def _run_health(args: argparse.Namespace) -> int:
    from dsocr.client import check_health

    health = check_health(args.server, deadline_s=args.deadline)
    verdict = "ok" if health.ok else "unhealthy"
    print(f"{verdict}: {args.server}: {health.detail} ({health.latency_s:.2f} s)")
    return 0 if health.ok else 1


def _run_tiny(args: argparse.Namespace) -> int:
    from dsocr.model.tiny import write_tiny_checkpoint

    directory = write_tiny_checkpoint(args.directory, seed=args.seed, max_shard_bytes=args.max_shard_bytes)
    print(directory)
    return 0


def _run_reader(args: argparse.Namespace) -> int:
    from dsocr.model.reader import write_reader_checkpoint

    print(write_reader_checkpoint(args.directory))
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from dsocr.documents.batch import ocr_file
    from dsocr.documents.rendering import DEFAULT_DPI, RenderPool
    from dsocr.model.inference import OcrModel
    from dsocr.model.reader import DEMO_PAGE, describe_reader, write_reader_checkpoint

    page, options = SAMPLE_PAGE, options_from_arguments(args)
    try:
        model = OcrModel.load(args.model, device=args.device)
        print(f"dsocr demo: using {args.model}", file=sys.stderr)
    except CheckpointError as err:
        reader = write_reader_checkpoint(args.work_dir / "tiny-reader")
        model, page = OcrModel.load(str(reader), device=args.device), DEMO_PAGE
        trained = model.source.lineage["parameters"]  # the reader reads in the mode and prompt it was trained in
        options = options.model_copy(update={"mode": trained["mode"], "prompt": trained["prompt"]})
        print(
            f"dsocr demo: {err}\ndsocr demo: falling back to {reader}: {describe_reader()}\n"
            f"dsocr demo: reading {DEMO_PAGE.name}, one of its training pages, in {options.mode} mode with the "
            f"{options.prompt!r} prompt",
            file=sys.stderr,
        )
    with RenderPool(workers=1) as pool:
        run = ocr_file(
            model,
            model_lineage(model),
            pool,
            page,
            options,
            dpi=DEFAULT_DPI,
            out=args.work_dir / "demo",
        )
    sys.stdout.write(run.markdown)
    _print_summary(run)
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    import contextlib
    import signal
    import tempfile
    import threading

    from dsocr.api.cli import api_beside
    from dsocr.export.cli import build_from_arguments
    from dsocr.triton.repository import check_repository
    from dsocr.triton.server import ServerError, TritonServer

    class Interrupted(Exception):
        pass

    # Before the server runs, a signal abandons the preparation; once it runs, the signal is passed on to it.
    stopping, received, serving = threading.Event(), [], threading.Event()

    def on_signal(signum, _frame):
        received.append(signum)
        stopping.set()
        if not serving.is_set():
            raise Interrupted

    if not args.model and (args.repository is None or args.overrides or args.artifacts):
        raise ValueError("give --model to build a repository, or --repository alone to serve one already built")
    config_name = "gpu" if args.device == "cuda" else "cpu"
    previous_handlers = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.ExitStack() as cleanup:
            repository = args.repository
            if args.model:
                if repository is None:
                    scratch = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="dsocr-serve-"))
                    repository = Path(scratch) / "repository"
                repository = build_from_arguments(args, repository, config_name)
            check_repository(repository, config_name)
            server = TritonServer(
                repository,
                config_name=config_name,
                binary=args.tritonserver,
                host=args.host,
                http_port=args.http_port,
                grpc_port=args.grpc_port,
                metrics_port=args.metrics_port,
                log_path=args.log_file,
            )
            serving.set()
            server.start()
            cleanup.callback(server.stop)  # registered after the folder: the server stops before it is removed
            api_stack, api = cleanup.enter_context(contextlib.ExitStack()), None
            if server.wait_ready(args.startup_timeout, interrupt=stopping):
                print(
                    f"dsocr serve: ready: gRPC {server.grpc_url}, HTTP {server.http_url}, metrics {server.metrics_url}"
                    f" (repository {repository}, log {server.log_path})",
                    flush=True,
                )
                if args.with_api:
                    api = api_stack.enter_context(api_beside(server.grpc_url, args.host, args.api_port))
            while not stopping.wait(0.5):
                if server.process.poll() is not None:
                    raise server.error(f"tritonserver exited unexpectedly with status {server.process.returncode}")
                if api is not None and api.poll() is not None:
                    raise ServerError(f"the HTTP API exited unexpectedly with status {api.returncode}")
            signum = received[0]
            api_stack.close()  # the API first: its in-flight pages still need the server
            status = server.stop(signum=signum)
            # Until its models are loaded Triton has no signal handler, so the signal ends it outright: still asked for.
            if status not in (0, -signum):
                raise server.error(f"tritonserver did not stop cleanly (status {status})")
            print("dsocr serve: stopped", file=sys.stderr)
            return 0
    except Interrupted:
        return 0
    except ServerError as err:
        print(f"dsocr serve: error: {err.one_line()}", file=sys.stderr)
        return 1
    except OSError as err:  # the repository folder cannot be written, or holds something else
        print(f"dsocr serve: error: {err}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
