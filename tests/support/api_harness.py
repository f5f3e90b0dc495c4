"""Test harness for the HTTP API: the real app on a real uvicorn server on a free loopback port, in a thread of
this process or in a child process of its own (``dsocr api``, for tests that kill it)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from dsocr.api.app import create_app
from dsocr.api.settings import Settings

STARTUP_TIMEOUT_S = 60
#: Sized for a 2-core CI machine: one render process per document, checks often enough for tests to see them.
SMALL = {
    "render_pools": 2,
    "render_workers": 1,
    "job_workers": 1,
    "health_interval_s": 2.0,
    "health_retry_s": 0.5,
    "canary_enabled": False,  # its own tests turn it on: in the background it would slow every other test
}
#: Few tokens a page: the random tiny model never stops on its own, and CPU tests must stay fast.
FEW_TOKENS = 8


def settings(triton_url: str, work_dir: Path, **overrides) -> Settings:
    return Settings(**{"triton_url": triton_url, "jobs_db": work_dir / "jobs.sqlite3", **SMALL, **overrides})


def client(base_url: str, **options) -> httpx.Client:
    """An HTTP client for the API: no proxies from the environment (the server is local)."""
    return httpx.Client(base_url=base_url, trust_env=False, timeout=options.pop("timeout", 120), **options)


def form(**fields) -> dict[str, str]:
    """Form fields for /ocr/*: the tiny mode and few tokens unless given."""
    return {"mode": "tiny", "max_new_tokens": str(FEW_TOKENS), **{key: str(value) for key, value in fields.items()}}


def metric(http: httpx.Client, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` carrying ``labels`` on the API's /metrics."""
    families = text_string_to_metric_families(http.get("/metrics").text)
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())
    )


@contextlib.contextmanager
def api_server(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn in a thread; yields its base URL once its lifespan has started."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            listener.close()
            raise RuntimeError("the API did not start (its error is in the log above)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        listener.close()


class ApiProcess:
    """``dsocr api`` in a child process, listening on a free port it reports in its log."""

    def __init__(self, triton_url: str, jobs_db: Path, log_path: Path, env: dict[str, str] | None = None):
        command = [sys.executable, "-m", "dsocr.cli", "api", "--server", triton_url, "--port", "0"]
        self.log_path = log_path
        self._log = open(log_path, "ab")  # closed when the process is stopped or killed
        self._log_start = self._log.tell()  # a restart may append to the log of an earlier process
        self.process = subprocess.Popen(
            [*command, "--jobs-db", str(jobs_db)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                **{f"DSOCR_API_{key.upper()}": str(value) for key, value in SMALL.items()},
                **(env or {}),
            },
        )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            log = self.log_path.read_bytes()[self._log_start :].decode(errors="replace")
            found = re.findall(r"Uvicorn running on (http://\S+)", log)
            if found:
                return found[-1]
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dsocr api did not start:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.1)

    def __enter__(self) -> ApiProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
