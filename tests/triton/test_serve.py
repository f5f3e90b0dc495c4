"""``dsocr serve``: Triton on a materialised repository, ready on its ports, stopped cleanly by a signal, and
one clear line when it cannot run."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from dsocr.export.repository import build_repository
from dsocr.triton import server
from tests.support.triton_harness import EXIT_TIMEOUT_S, SMALL_SETTINGS, free_ports, processes_mentioning, set_options

READY_DEADLINE_S = 120
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is local: no http_proxy
STOP_DEADLINE_S = EXIT_TIMEOUT_S + 30


def _serve(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dsocr.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _serve_and_wait(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsocr.cli", "serve", *args], capture_output=True, text=True, timeout=READY_DEADLINE_S
    )


def _port_options(http: int, grpc: int, metrics: int) -> list[str]:
    return ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]


def _ready(http_port: int) -> bool:
    try:
        with DIRECT.open(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def tiny_model_options(tiny_checkpoint, tiny_onnx_exports) -> list[str]:
    """``--model`` with the session's ONNX exports, so a test's server starts without exporting again."""
    return ["--model", str(tiny_checkpoint), "--artifacts", *map(str, tiny_onnx_exports)]


@pytest.mark.triton
def test_serve_becomes_ready_and_sigterm_stops_it_cleanly(tiny_model_options, tmp_path):
    http, grpc, metrics = free_ports(3)
    repository = tmp_path / "repository"
    options = [*tiny_model_options, "--repository", str(repository), *_port_options(http, grpc, metrics)]
    process = _serve(*options, "--log-file", str(tmp_path / "tritonserver.log"), *set_options())
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while not _ready(http):
            assert process.poll() is None, f"dsocr serve exited with {process.returncode}: {process.stderr.read()}"
            assert time.monotonic() < deadline, f"not ready within {READY_DEADLINE_S} s"
            time.sleep(0.25)
        assert len(processes_mentioning(str(repository))) >= 2  # the server and its stubs: the last check can see them
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=STOP_DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert f"dsocr serve: ready: gRPC 127.0.0.1:{grpc}, HTTP http://127.0.0.1:{http}" in stdout
    assert processes_mentioning(str(repository)) == {}


def test_serve_with_a_missing_checkpoint_exits_with_one_line(tmp_path):
    line = _one_error_line(_serve_and_wait("--model", str(tmp_path / "nowhere")))
    assert "nowhere: not a checkpoint directory or a hub id" in line


@pytest.mark.triton
def test_serve_with_a_port_in_use_exits_with_one_line(tiny_model_options):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http, _, metrics = free_ports(3)
        ports = _port_options(http, port, metrics)
        line = _one_error_line(_serve_and_wait(*tiny_model_options, *ports))
    assert line == f"dsocr serve: error: cannot listen for grpc on 127.0.0.1:{port}: Address already in use"


def test_serve_with_a_tritonserver_that_is_not_there_exits_with_one_line(tiny_model_options, tmp_path):
    line = _one_error_line(_serve_and_wait(*tiny_model_options, "--tritonserver", str(tmp_path / "tritonserver")))
    assert line == f"dsocr serve: error: tritonserver {tmp_path / 'tritonserver'} (given) is not an executable file"


def test_without_any_tritonserver_the_error_says_to_run_make_tools(monkeypatch, tmp_path):
    monkeypatch.setattr(server, "BUNDLED_SERVER", tmp_path / "tritonserver")
    monkeypatch.delenv(server.BINARY_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(server.ServerError, match="run `make tools`"):
        server.find_tritonserver()


@pytest.mark.triton
def test_serve_reports_why_the_server_died_in_one_line(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    repository = build_repository(tmp_path / "repository", str(tiny_checkpoint), artifacts=tiny_onnx_exports)
    broken = repository / "encoder_640" / "1" / "model.onnx"
    broken.unlink()  # a link to the session's export: replaced, not overwritten
    broken.write_bytes(b"not onnx")
    line = _one_error_line(
        _serve_and_wait(
            "--repository",
            str(repository),
            "--log-file",
            str(tmp_path / "tritonserver.log"),
            *_port_options(*free_ports(3)),
        )
    )
    assert line.startswith("dsocr serve: error: tritonserver exited with status 1 before it was ready: ")
    assert "failed to load" in line and line.endswith(f"(log: {tmp_path / 'tritonserver.log'})")


def test_serve_without_a_model_or_a_built_repository_says_what_to_give():
    line = _one_error_line(_serve_and_wait("--set", "decode.max_running_pages=4"))
    assert line == "dsocr: error: give --model to build a repository, or --repository alone to serve one already built"


def test_the_triton_server_fixture_serves_the_tiny_checkpoint_with_the_small_settings(triton_server, tiny_checkpoint):
    with DIRECT.open(f"{triton_server.http_url}/v2/models/deepseek_ocr/ready") as response:
        assert response.status == 200
    with DIRECT.open(f"{triton_server.http_url}/v2/models/decode/config") as response:
        parameters = {key: value["string_value"] for key, value in json.load(response)["parameters"].items()}
    assert parameters["checkpoint"] == str(tiny_checkpoint.resolve())
    assert {key: parameters[key] for key in SMALL_SETTINGS["decode"]} == SMALL_SETTINGS["decode"]
