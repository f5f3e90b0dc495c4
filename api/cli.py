"""``dsocr api``: the HTTP API in front of a Triton server; and the API beside ``dsocr serve --with-api``.

Kept free of heavy imports at module level: ``dsocr api --help`` imports it to build its parser.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

DEFAULT_PORT = 8080
STOP_TIMEOUT_S = 20


def add_api(api: argparse.ArgumentParser) -> None:
    api.description = (
        "Run the FastAPI facade with uvicorn: POST /ocr/predict, /ocr/jobs, /health/live, /health/ready, "
        "/metrics, OpenAPI at /docs. Every setting can also come from a DSOCR_API_<NAME> environment "
        "variable (see docs/api.md); the options here win."
    )
    api.add_argument("--server", default=None, metavar="HOST:PORT", help="the Triton server's gRPC address")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on")
    api.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any free port)")
    api.add_argument(
        "--jobs-db",
        type=Path,
        default=None,
        help="the SQLite file of jobs (default $XDG_STATE_HOME/dsocr/jobs.sqlite3, ~/.local/state without it)",
    )
    api.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    api.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from dsocr.data.dataset import DatasetError

    from .app import create_app
    from .quality import BaselineError
    from .settings import Settings
    from .store import StoreLocked, ensure_unlocked

    overrides = {"triton_url": args.server, "jobs_db": args.jobs_db}
    try:
        settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as error:
        print(f"dsocr api: error: {error}", file=sys.stderr)
        return 2
    try:
        ensure_unlocked(Path(settings.jobs_db))
    except StoreLocked as error:
        print(f"dsocr api: error: {error}", file=sys.stderr)
        return 1
    try:
        app = create_app(settings)
    except (BaselineError, DatasetError) as error:
        print(f"dsocr api: error: {error}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=STOP_TIMEOUT_S,
    )
    return 0


@contextlib.contextmanager
def api_beside(triton_grpc_url: str, host: str, port: int) -> Iterator[subprocess.Popen]:
    """``dsocr api`` in a child process against a local server; SIGTERM (then SIGKILL) when the block ends."""
    command = [sys.executable, "-m", "dsocr.cli", "api", "--server", triton_grpc_url, "--host", host]
    process = subprocess.Popen([*command, "--port", str(port)], stdin=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S + 5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
