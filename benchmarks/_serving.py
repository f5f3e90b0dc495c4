"""What the serving benchmarks share: a checkpoint, a Triton server on it, a real page, the record's header.

Not a benchmark itself. The scripts beside it import it (``python benchmarks/<script>.py`` puts this folder
first on ``sys.path``), and so does ``tests/test_perf_analyzer.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
import tritonclient

import dsocr
from dsocr.client.tensors import page_bytes
from dsocr.documents.rendering import open_document
from dsocr.export.repository import build_repository
from dsocr.images import load_image
from dsocr.model.tiny import write_tiny_checkpoint
from dsocr.triton.repository import check_repository, read_config, variant_config
from dsocr.triton.server import TritonServer

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
#: A US-letter page rendered at 144 dpi (1224 × 1584): what a PDF page becomes before preprocessing.
SAMPLE_PAGE = REPO / "dsocr" / "samples" / "sample-page.png"
TINY = "tiny"  # --model value: a tiny random checkpoint written for the run (seed 0)
EXIT_TIMEOUT_S = 10
STARTUP_TIMEOUT_S = 600


# --- the checkpoint and the server ------------------------------------------------------------------------


def checkpoint(model: str, work_dir: Path) -> str:
    """``model`` as something ``build_repository`` and ``OcrModel.load`` take; ``tiny`` writes the random one."""
    if model == TINY:
        return str(write_tiny_checkpoint(work_dir / "tiny-checkpoint", seed=0))
    return model


def parse_settings(items: list[str]) -> dict[str, dict[str, str]]:
    """``["decode.max_running_pages=8", ...]`` → ``{"decode": {"max_running_pages": "8"}}``."""
    settings: dict[str, dict[str, str]] = {}
    for item in items:
        name, _, value = item.partition("=")
        model, _, key = name.partition(".")
        if not (model and key and _):
            raise SystemExit(f"--set takes MODEL.KEY=VALUE, got {item!r}")
        settings.setdefault(model, {})[key] = value
    return settings


def merge_settings(*layers: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for layer in layers:
        for model, values in layer.items():
            merged.setdefault(model, {}).update(values)
    return merged


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options every serving benchmark takes: what to serve, where, with which settings, on which page."""
    parser.add_argument("--model", default=TINY, help="checkpoint dir or hub id[@revision] (default: tiny random)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="picks the cpu or gpu configs")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU: torch threads of each served model (and in process); 0 = the configs' own (default 1)",
    )
    parser.add_argument("--page", type=Path, default=None, help="PNG/JPEG, or a PDF (page 1 at 144 dpi)")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="override a served model's parameter, like decode.max_running_pages=32 (repeatable; wins)",
    )


def settings_from(args: argparse.Namespace, *layers: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """The server's parameter overrides: ``--threads`` on CPU, then ``layers``, then ``--set``.

    On CPU the configs' ``torch_threads: 0`` gives every model all cores; on a small machine encode and
    decode then fight over them (the decode step of the tiny model went from 2 ms to 12-29 ms on 2 busy
    cores), so the benchmarks pin each model to ``--threads``.
    """
    threads = {}
    if args.device == "cpu" and args.threads:
        threads = {model: {"torch_threads": str(args.threads)} for model in ("preprocess", "encode", "decode")}
        threads["encoder_view"] = {"threads": str(args.threads)}
    return merge_settings(threads, *layers, parse_settings(args.settings))


def server(
    model: str, work_dir: Path, settings: Mapping[str, Mapping[str, str]] | None = None, device: str = "cpu"
) -> TritonServer:
    """A server (not started: ``with`` starts it and waits until ready) for checkpoint ``model`` with
    ``settings`` over the template's parameters, on free loopback ports; repository and log in ``work_dir``."""
    config_name = "gpu" if device == "cuda" else "cpu"
    repository = build_repository(work_dir / "repository", model, config_name, parameters=settings or {})
    check_repository(repository, config_name)
    return TritonServer(
        repository,
        config_name=config_name,
        log_path=work_dir / "tritonserver.log",
        exit_timeout_s=EXIT_TIMEOUT_S,
    )


@contextlib.contextmanager
def running(triton: TritonServer) -> Iterator[TritonServer]:
    """``with triton``, with the long readiness deadline a full-size checkpoint needs to load."""
    triton.start()
    try:
        triton.wait_ready(STARTUP_TIMEOUT_S)
        yield triton
    finally:
        triton.stop()


def served_parameters(triton: TritonServer) -> dict[str, dict[str, str]]:
    """Every model's parameters as the server loaded them (checkpoint path and lineage left out)."""
    parameters = {}
    for model_dir in sorted(p for p in triton.repository.iterdir() if p.is_dir() and not p.name.startswith(".")):
        file = variant_config(model_dir, triton.config_name)
        values = {key: value.string_value for key, value in read_config(file).parameters.items()}
        values = {k: v for k, v in sorted(values.items()) if k not in {"checkpoint", "model_id", "revision"}}
        if values:
            parameters[model_dir.name] = values
    return parameters


def server_version(triton: TritonServer) -> str | None:
    try:
        with urllib.request.urlopen(f"{triton.http_url}/v2", timeout=5) as response:
            return json.load(response).get("version")
    except OSError:
        return None


_SAMPLE = re.compile(r"^(dsocr_\w+)(\{[^}]*\})?\s+(\S+)$")


def scrape_metrics(url: str) -> dict[str, float]:
    """The ``dsocr_*`` series on Triton's metrics endpoint, keyed by name plus labels other than ``model``."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            name, labels, value = match.groups()
            labels = ",".join(part for part in (labels or "{}")[1:-1].split(",") if part and "model=" not in part)
            samples[f"{name}{{{labels}}}" if labels else name] = float(value)
    return samples


STAGES = ("queue", "compute_input", "compute_infer", "compute_output")


def model_stats(triton: TritonServer) -> dict[str, dict[str, int]]:
    """Triton's cumulative statistics per model: successful requests and nanoseconds per stage."""
    with urllib.request.urlopen(f"{triton.http_url}/v2/models/stats", timeout=5) as response:
        models = json.load(response)["model_stats"]
    stats = {}
    for model in models:
        inference = model["inference_stats"]
        stats[model["name"]] = {
            "requests": int(inference["success"]["count"]),
            **{stage: int(inference[stage]["ns"]) for stage in STAGES},
        }
    return stats


def stats_per_request(before: Mapping, after: Mapping) -> dict[str, dict[str, float]]:
    """Milliseconds per request in each model's stages over an interval. For the decoupled decode,
    compute_infer is only ``execute()`` handing the page to the engine, not the decoding."""
    per_request = {}
    for name, now in after.items():
        then = before.get(name, {})
        requests = now["requests"] - then.get("requests", 0)
        if requests:
            per_request[name] = {
                stage: round((now[stage] - then.get(stage, 0)) / requests / 1e6, 2) for stage in STAGES
            }
    return per_request


def metrics_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """Counters as increments over the interval, gauges as their value at its end."""
    return {key: (value - before.get(key, 0.0) if "_total" in key else value) for key, value in sorted(after.items())}


# --- the page -----------------------------------------------------------------------------------------------


def page_png(path: Path | None = None, dpi: float = 144) -> bytes:
    """One real page as PNG bytes (what a client sends): an image file re-encoded as ``OcrClient`` does, or
    page 1 of a PDF rendered at ``dpi``. Default: the bundled sample page."""
    path = Path(path) if path else SAMPLE_PAGE
    data = path.read_bytes()
    if data.startswith(b"%PDF"):
        with open_document(data, pages="1", dpi=dpi, workers=1) as document:
            [page] = list(document)
        if page.error is not None:
            raise SystemExit(f"{path}: page 1 could not be rendered: {page.error.message}")
        return page_bytes(page.image)
    return page_bytes(load_image(data))


def page_record(path: Path | None, png: bytes) -> dict:
    source = Path(path) if path else SAMPLE_PAGE.relative_to(REPO)
    return {"source": str(source), "png_bytes": len(png), "png_sha256": hashlib.sha256(png).hexdigest()}


# --- the record ----------------------------------------------------------------------------------------------


def command_line(script: str) -> str:
    return shlex.join(["python", f"benchmarks/{script}", *sys.argv[1:]])


def record_header(script: str, args, started_at: str, machine: dict, versions: dict, page: bytes) -> dict:
    """What every serving benchmark records first: how to reproduce it, where and on what it ran."""
    return {
        "command": command_line(script),
        "date": started_at,
        "machine": machine,
        "versions": versions,
        "model": args.model,
        "device": args.device,
        "page": page_record(args.page, page),
    }


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        total_kib = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        memory = round(total_kib / 2**20, 1)
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": memory,
        "arch": platform.machine(),
        "python": platform.python_version(),
        # Load from other processes in the minute before the run: above ~0.5 on this machine, numbers are noisy.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions(triton: TritonServer | None = None, perf_analyzer: Path | None = None) -> dict:
    found = {
        "dsocr": dsocr.__version__ if hasattr(dsocr, "__version__") else _distribution_version("dsocr"),
        "torch": torch.__version__,
        "tritonclient": getattr(tritonclient, "__version__", None) or _distribution_version("tritonclient"),
    }
    if triton is not None:
        found["tritonserver"] = server_version(triton)
    if perf_analyzer is not None:
        found["perf_analyzer"] = perf_analyzer_version(perf_analyzer)
    found["git_commit"] = _git_commit()
    return found


def perf_analyzer_version(binary: Path) -> str | None:
    try:
        run = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    out = run.stdout + run.stderr  # 2.51 prints it on stderr
    match = re.search(r"Version (\S+)", out)
    return match[1] if match else out.strip() or None


def _distribution_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """HEAD and whether the tree had changes: what the numbers were measured on."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except OSError:
        return None
    return (head + ("+changes" if dirty else "")) or None


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_record(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
