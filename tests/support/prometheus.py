"""A real Prometheus server on a free loopback port, with its config, storage and log in a test's folder.

Prometheus and its tools come from Debian's packages (``make tools``); a missing binary fails the test rather than
skipping it, so CI cannot pass without checking the monitoring config.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.triton_harness import free_ports

STARTUP_S = 60
STOP_S = 10


def tool(name: str) -> str:
    """The path of a monitoring binary (prometheus, promtool, amtool, ...); raises when it is not installed."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"`{name}` is not installed; run `make tools` (scripts/install-debian-tools.sh)")
    return path


@dataclass(frozen=True)
class Prometheus:
    url: str
    log: Path

    def _get(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:  # a bad query answers 400 with the same JSON envelope
            return json.load(err)

    def query(self, expr: str) -> dict:
        """``/api/v1/query``'s JSON answer: ``status`` is "success", or "error" with ``errorType`` and ``error``."""
        return self._get("/api/v1/query", query=expr)

    def alerts(self) -> list[dict]:
        """Active alerts (pending or firing), as ``/api/v1/alerts`` lists them."""
        return self._get("/api/v1/alerts")["data"]["alerts"]

    def rules(self) -> list[dict]:
        """Every loaded rule with its ``health`` ("ok", "err", or "unknown" before its first evaluation)."""
        return [rule for group in self._get("/api/v1/rules")["data"]["groups"] for rule in group["rules"]]

    def firing(self, alertname: str) -> bool:
        return any(a["labels"].get("alertname") == alertname and a["state"] == "firing" for a in self.alerts())


@contextmanager
def running_prometheus(
    folder: Path,
    scrape_targets: dict[str, list[str]] | None = None,
    rule_files: Sequence[Path] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> Iterator[Prometheus]:
    """Start ``prometheus`` scraping ``scrape_targets`` (job name -> host:port list) and evaluating ``rule_files``;
    yield once it is ready; stop it on exit. ``folder`` keeps prometheus.yml, data/ and prometheus.log."""
    binary = tool("prometheus")
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(Path(f).resolve()) for f in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]}
            for job, targets in (scrape_targets or {}).items()
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    [port] = free_ports(1)
    server = Prometheus(url=f"http://127.0.0.1:{port}", log=folder / "prometheus.log")
    command = [
        binary,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with server.log.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(server, process)
        yield server
    finally:
        process.terminate()  # SIGTERM: Prometheus shuts down cleanly (and flushes its log)
        try:
            process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: Prometheus, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"prometheus exited with {process.returncode} before it was ready:\n{log_tail(server.log)}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # not listening yet, or 503 while it replays its WAL
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"prometheus at {server.url} was not ready within {STARTUP_S} s:\n{log_tail(server.log)}"
            )
        time.sleep(0.2)


def log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
