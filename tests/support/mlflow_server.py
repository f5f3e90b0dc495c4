"""A real MLflow tracking server (SQLite backend, local artifact store) on a loopback port, for one test session."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.triton_harness import free_ports

STARTUP_S = 180


@contextlib.contextmanager
def mlflow_server(folder: Path):
    """Yields the server's URL; the server and its workers are stopped afterwards."""
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    if mlflow is None:
        raise RuntimeError("the mlflow command is not installed (pip install 'dsocr[eval]')")
    [port] = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    command = [
        mlflow, "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.sqlite3'}",
        "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_S
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start; its log: {(folder / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
