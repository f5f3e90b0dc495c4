"""``dsocr serve --with-api``: Triton and the HTTP API together for local use, stopped together."""

import os
import signal
import subprocess
import sys
import time

import httpx
from api_harness import client, form
from test_documents import save, shaded_pdf
from triton_harness import EXIT_TIMEOUT_S, free_ports, processes_mentioning, set_options

READY_DEADLINE_S = 120


def ready(http) -> bool:
    try:
        return http.get("/health/ready").status_code == 200
    except httpx.TransportError:
        return False


def test_serve_with_api_serves_both_and_sigterm_stops_both(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    http_port, grpc_port, metrics_port, api_port = free_ports(4)
    repository = tmp_path / "repository"
    command = [sys.executable, "-m", "dsocr.cli", "serve", "--model", str(tiny_checkpoint), "--artifacts"]
    command += [*map(str, tiny_onnx_exports), "--repository", str(repository), "--log-file", str(tmp_path / "t.log")]
    command += ["--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port)]
    command += ["--with-api", "--api-port", str(api_port), *set_options()]
    log = open(tmp_path / "serve.log", "wb")
    env = {**os.environ, "DSOCR_API_JOBS_DB": str(tmp_path / "jobs.sqlite3")}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        with client(f"http://127.0.0.1:{api_port}") as http:
            deadline = time.monotonic() + READY_DEADLINE_S
            while not ready(http):
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, f"not ready within {READY_DEADLINE_S} s"
                time.sleep(0.25)
            response = http.post("/ocr/predict", files={"file": ("a.pdf", save(shaded_pdf(1)))}, data=form())
            assert response.status_code == 200, response.text
            process.send_signal(signal.SIGTERM)
            assert process.wait(EXIT_TIMEOUT_S + 30) == 0, (tmp_path / "serve.log").read_text()
            assert not ready(http)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    assert processes_mentioning(str(repository)) == {}
    assert processes_mentioning(f"--api-port {api_port}") == {} and processes_mentioning(f"--port {api_port}") == {}
