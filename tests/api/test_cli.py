"""``dsocr serve --with-api``: Triton and the HTTP API together for local use, stopped together."""

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.api_harness import client, form
from tests.support.documents import save, shaded_pdf
from tests.support.triton_harness import EXIT_TIMEOUT_S, free_ports, processes_mentioning, set_options

pytestmark = pytest.mark.triton

READY_DEADLINE_S = 120


def ready(http) -> bool:
    try:
        return http.get("/health/ready").status_code == 200
    except httpx.TransportError:
        return False


def _serve_with_api(checkpoint, onnx_exports, tmp_path, api_port: int) -> subprocess.Popen:
    http_port, grpc_port, metrics_port = free_ports(3)
    command = [sys.executable, "-m", "dsocr.cli", "serve", "--model", str(checkpoint), "--artifacts"]
    command += [*map(str, onnx_exports), "--repository", str(tmp_path / "repository")]
    command += ["--log-file", str(tmp_path / "t.log")]
    command += ["--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port)]
    command += ["--with-api", "--api-port", str(api_port), *set_options()]
    env = {**os.environ, "DSOCR_API_JOBS_DB": str(tmp_path / "jobs.sqlite3")}
    with open(tmp_path / "serve.log", "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def _wait_ready(process: subprocess.Popen, http, tmp_path) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while not ready(http):
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, f"not ready within {READY_DEADLINE_S} s"
        time.sleep(0.25)


def test_serve_with_api_serves_both_and_sigterm_stops_both(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    [api_port] = free_ports(1)
    process = _serve_with_api(tiny_checkpoint, tiny_onnx_exports, tmp_path, api_port)
    try:
        with client(f"http://127.0.0.1:{api_port}") as http:
            _wait_ready(process, http, tmp_path)
            response = http.post("/ocr/predict", files={"file": ("a.pdf", save(shaded_pdf(1)))}, data=form())
            assert response.status_code == 200, response.text
            process.send_signal(signal.SIGTERM)
            assert process.wait(EXIT_TIMEOUT_S + 30) == 0, (tmp_path / "serve.log").read_text()
            assert not ready(http)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert processes_mentioning(str(tmp_path / "repository")) == {}
    assert processes_mentioning(f"--api-port {api_port}") == {} and processes_mentioning(f"--port {api_port}") == {}


def test_serve_with_api_stops_the_server_when_the_api_dies(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    [api_port] = free_ports(1)
    process = _serve_with_api(tiny_checkpoint, tiny_onnx_exports, tmp_path, api_port)
    try:
        with client(f"http://127.0.0.1:{api_port}") as http:
            _wait_ready(process, http, tmp_path)
        [api_pid] = processes_mentioning(f"--port {api_port}")
        os.kill(api_pid, signal.SIGKILL)
        assert process.wait(EXIT_TIMEOUT_S + 30) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    last_line = (tmp_path / "serve.log").read_text().strip().splitlines()[-1]
    assert last_line == "dsocr serve: error: the HTTP API exited unexpectedly with status -9"
    assert processes_mentioning(str(tmp_path / "repository")) == {}
