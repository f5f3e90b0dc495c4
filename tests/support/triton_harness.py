"""Test harness for the Triton server: the tiny checkpoint's repository, sized for a 2-core CI machine."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from pathlib import Path

from dsocr.export.repository import build_repository
from dsocr.triton.repository import check_repository
from dsocr.triton.server import TritonServer

#: One thread per model, so preprocess, encode and decode do not fight over two cores; a KV cache of a few
#: pages at the tiny model's context instead of the production 16 × 8192 positions.
SMALL_SETTINGS = {
    "preprocess": {"torch_threads": "1"},
    "encode": {"torch_threads": "1"},
    "encoder_view": {"threads": "1"},
    "decode": {"torch_threads": "1", "max_running_pages": "8", "max_context_tokens": "2048"},
}
#: Seconds a clean stop may take: Triton drains in-flight requests for up to its exit timeout.
EXIT_TIMEOUT_S = 10


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports free right now, for a server started with explicit ports."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def set_options(settings: dict[str, dict[str, str]] = SMALL_SETTINGS) -> list[str]:
    """``settings`` as ``dsocr serve --set MODEL.KEY=VALUE`` options."""
    return [
        option
        for model, values in settings.items()
        for key, value in values.items()
        for option in ("--set", f"{model}.{key}={value}")
    ]


def tiny_server(
    checkpoint: Path, onnx_exports: list[Path], work_dir: Path, settings: dict = SMALL_SETTINGS
) -> TritonServer:
    """A CPU server for ``checkpoint`` and its encoder's ONNX exports on free loopback ports, not started yet
    (``with`` starts it and waits until ready); its repository and log live in ``work_dir``."""
    repository = build_repository(work_dir / "repository", str(checkpoint), parameters=settings, artifacts=onnx_exports)
    check_repository(repository, "cpu")
    return TritonServer(repository, log_path=work_dir / "tritonserver.log", exit_timeout_s=EXIT_TIMEOUT_S)


def metric(server: TritonServer, name: str, **labels: str) -> float:
    """The sum of the series ``name`` carrying ``labels``, read from Triton's metrics endpoint."""
    with urllib.request.urlopen(server.metrics_url, timeout=5) as response:
        text = response.read().decode()
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        float(value)
        for series, label_set, value in re.findall(r"^(\w+)(?:\{(.*)\})? (\S+)$", text, re.M)
        if series == name and all(label in label_set for label in wanted)
    )


def running_pages(server: TritonServer) -> float:
    return metric(server, "dsocr_decode_running_pages")


def cancelled_pages(server: TritonServer) -> float:
    return metric(server, "dsocr_decode_pages_total", finish_reason="cancelled")


def eventually(condition, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def processes_mentioning(text: str) -> dict[int, str]:
    """pid → command line of live processes whose command line contains ``text`` (tritonserver and its python
    stubs name the repository; a stub also names its model's ``model.py``)."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        if text in command:
            found[int(cmdline.parent.name)] = command
    return found
