"""``dsocr web``: the Streamlit demo in front of a running HTTP API (``dsocr api``, or ``dsocr serve --with-api``).

Kept free of heavy imports: ``dsocr --help`` imports it to build its parser.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_PORT = 8501


def add_web(web: argparse.ArgumentParser) -> None:
    web.description = (
        "Serve the drag-and-drop demo with Streamlit: drop a PDF or image, see each page with its boxes next to "
        "its Markdown, download the .md and .json. It only calls the HTTP API; the API key, if the API needs one, "
        "comes from DSOCR_WEB_API_KEY."
    )
    web.add_argument("--api", required=True, metavar="URL", help="the HTTP API, e.g. http://127.0.0.1:8080")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on")
    web.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    web.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.api.startswith(("http://", "https://")):
        print(f"dsocr web: error: --api must be an http:// or https:// URL, got {args.api!r}", file=sys.stderr)
        return 2
    try:
        import streamlit  # noqa: F401  (only to say what is missing before handing over)
    except ImportError:
        print("dsocr web: error: Streamlit is not installed: pip install 'dsocr[web]'", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "streamlit", "run", str(Path(__file__).with_name("app.py"))]
    command += ["--server.headless", "true", "--server.address", args.host, "--server.port", str(args.port)]
    command += [
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]
    os.execve(sys.executable, command, {**os.environ, "DSOCR_WEB_API": args.api})
    return 0  # not reached: Streamlit has replaced this process
