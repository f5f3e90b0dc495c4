"""The HTTP API under a steady load: ``--clients`` concurrent clients posting PDFs to ``/ocr/predict`` for
``--duration`` seconds against the whole CPU stack (``dsocr api`` in its own process, in front of Triton).

Each client is a closed loop: it posts a ``--pages``-page PDF (the bundled sample page, US letter, as a PDF
made with Pillow, rendered back at 144 dpi by the API), waits for the answer, and posts again. A 429 is waited
out (its Retry-After) and the same document sent again; any other failure is recorded. Every page of every
accepted request must come back exactly once: pages lost = pages of accepted requests minus pages in their
answers, plus pages of requests that ended in an error. Latency is per request, from sending it to its answer,
counted for requests sent after a ``--warmup`` of seconds. Records pages/s, latency percentiles, the answers by
status and code, the API's own metrics (its per-stage page histograms) and the load average sampled through
the run (the machine may be shared: read the numbers with it).

    python benchmarks/api_load.py                                   # 64 clients, 300 s, tiny checkpoint
    python benchmarks/api_load.py --clients 8 --duration 20 --warmup 5 --out out/api_load_check.json  # check
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import _serving
import httpx
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

RESULTS = _serving.RESULTS / "api_load.json"
STAGES = ("render", "queue", "inference", "total")


def document(pages: int, page: Path) -> bytes:
    """An image (default: the sample page, US letter at 144 dpi) ``pages`` times as a PDF, as a scan comes."""
    image = Image.open(page).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PDF", resolution=144, save_all=True, append_images=[image] * (pages - 1))
    return buffer.getvalue()


class Api:
    """``dsocr api`` in a child process on a free port (read from its log)."""

    def __init__(self, triton_url: str, work: Path, env: dict[str, str]):
        self.log_path = work / "api.log"
        self._log = open(self.log_path, "wb")  # closed in stop
        command = [sys.executable, "-m", "dsocr.cli", "api", "--server", triton_url, "--port", "0"]
        command += ["--jobs-db", str(work / "jobs.sqlite3")]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            found = re.findall(r"Uvicorn running on (http://\S+)", self.log_path.read_text(errors="replace"))
            if found:
                return found[-1]
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"dsocr api did not start:\n{self.log_path.read_text(errors='replace')}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the API process and its render workers so far."""
        pids = [self.process.pid, *_children(self.process.pid)]
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


async def client_loop(http: httpx.AsyncClient, data: bytes, fields: dict, stop_at: float, measure_from: float, tally):
    while time.monotonic() < stop_at:
        sent = time.monotonic()
        try:
            response = await http.post("/ocr/predict", files={"file": ("sample.pdf", data)}, data=fields)
        except httpx.HTTPError as error:
            tally.error(f"transport:{type(error).__name__}", sent, measure_from)
            continue
        answered = time.monotonic()
        if response.status_code == 429:
            tally.statuses["429 overloaded"] += 1
            await asyncio.sleep(float(response.headers.get("retry-after", 1)))
            continue
        if response.status_code != 200:
            tally.error(f"{response.status_code} {response.json().get('code')}", sent, measure_from)
            continue
        tally.answered(response.json(), sent, answered, measure_from)


class Tally:
    def __init__(self, pages_per_request: int):
        self.pages_per_request = pages_per_request
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []  # seconds, of measured requests
        self.page_latencies: list[float] = []  # milliseconds, as the API reports them
        self.pages_accepted = self.pages_returned = self.pages_lost = 0
        self.measured_pages = 0
        self.page_outcomes: Counter[str] = Counter()

    def answered(self, body: dict, sent: float, answered: float, measure_from: float) -> None:
        self.statuses["200 ok"] += 1
        pages = body["pages"]
        self.pages_accepted += self.pages_per_request
        self.pages_returned += len(pages)
        self.pages_lost += self.pages_per_request - len({page["index"] for page in pages})
        self.page_outcomes.update(page["status"] for page in pages)
        if sent >= measure_from:
            self.latencies.append(answered - sent)
            self.page_latencies.extend(page["latency_ms"] for page in pages)
            self.measured_pages += len(pages)

    def error(self, what: str, sent: float, measure_from: float) -> None:
        self.statuses[what] += 1
        self.pages_lost += self.pages_per_request


async def run_load(url: str, args: argparse.Namespace) -> tuple[Tally, float, list]:
    data = document(args.pages, args.page or _serving.SAMPLE_PAGE)
    fields = {"mode": args.mode, "max_new_tokens": str(args.max_new_tokens), "output": "json"}
    tally = Tally(args.pages)
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    loads = []
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=900, limits=limits) as http:
        start = time.monotonic()
        measure_from, stop_at = start + args.warmup, start + args.warmup + args.duration

        async def sample_load() -> None:
            while time.monotonic() < stop_at:
                loads.append([round(time.monotonic() - start), *(round(x, 2) for x in os.getloadavg())])
                await asyncio.sleep(15)

        sampler = asyncio.create_task(sample_load())
        await asyncio.gather(
            *(client_loop(http, data, fields, stop_at, measure_from, tally) for _ in range(args.clients))
        )
        sampler.cancel()
        # The last requests were sent before stop_at and answered after it: the measured window is until the last.
        wall = time.monotonic() - measure_from
    return tally, wall, loads


def api_metrics(url: str) -> dict:
    text = httpx.get(f"{url}/metrics", trust_env=False, timeout=30).text
    samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]

    def total(name: str, **labels) -> float:
        return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    stages = {
        stage: round(
            1000
            * total("dsocr_api_page_seconds_sum", stage=stage)
            / max(1, total("dsocr_api_page_seconds_count", stage=stage)),
            1,
        )
        for stage in STAGES
    }
    outcomes = {s.labels["outcome"]: int(s.value) for s in samples if s.name == "dsocr_api_pages_total"}
    return {
        "pages_by_outcome": outcomes,
        "mean_page_ms_by_stage": stages,
        "requests_500": int(total("dsocr_api_requests_total", status="500")),
        "vision_tokens": int(total("dsocr_api_vision_tokens_total")),
        "generated_tokens": int(total("dsocr_api_generated_tokens_total")),
    }


def milliseconds(values: list[float], scale: float = 1000) -> dict:
    return {
        "mean": round(scale * sum(values) / len(values), 1),
        **{f"p{q}": round(scale * _serving.percentile(values, q), 1) for q in (50, 90, 99)},
        "max": round(scale * max(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _serving.add_common_options(parser)
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--duration", type=float, default=300, help="measured seconds (default 300)")
    parser.add_argument("--warmup", type=float, default=15, help="seconds of load before measuring (default 15)")
    parser.add_argument("--pages", type=int, default=1, help="pages per request (default 1)")
    parser.add_argument("--mode", default="tiny", help="tiny|small|base|large|gundam (default tiny)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="default 64")
    parser.add_argument(
        "--api-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a DSOCR_API_* setting for the API, like DSOCR_API_MAX_IN_FLIGHT_PAGES=32 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    api_env = dict(item.split("=", 1) for item in args.api_env)
    started_at, machine = _serving.now(), _serving.machine()

    with tempfile.TemporaryDirectory(prefix="dsocr-api-load-") as work:
        work = Path(work)
        checkpoint = _serving.checkpoint(args.model, work)
        triton = _serving.server(checkpoint, work, _serving.settings_from(args), args.device)
        with _serving.running(triton):
            api = Api(triton.grpc_url, work, api_env)
            try:
                cpu_before = api.cpu_seconds()
                tally, wall, loads = asyncio.run(run_load(api.url, args))
                api_cpu = api.cpu_seconds() - cpu_before
                metrics = api_metrics(api.url)
            finally:
                api.stop()
            parameters = _serving.served_parameters(triton)
            versions = _serving.versions(triton)

    sample = document(args.pages, args.page or _serving.SAMPLE_PAGE)
    record = {
        "command": _serving.command_line("api_load.py"),
        "date": started_at,
        "machine": machine,
        "versions": versions,
        "model": args.model,
        "device": args.device,
        "document": {
            "source": str(args.page or _serving.SAMPLE_PAGE.relative_to(_serving.REPO)),
            "pdf_bytes": len(sample),
            "pdf_sha256": hashlib.sha256(sample).hexdigest(),
        },
        "request": {"mode": args.mode, "max_new_tokens": args.max_new_tokens, "pages": args.pages, "dpi": 144},
        "clients": args.clients,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "api_settings": api_env or "defaults",
        "server_parameters": parameters,
        "answers": dict(tally.statuses),
        "pages": {
            "in_accepted_requests": tally.pages_accepted,
            "returned": tally.pages_returned,
            "lost": tally.pages_lost,
            "by_status": dict(tally.page_outcomes),
        },
        "measured": {
            "wall_s": round(wall, 1),
            "requests": len(tally.latencies),
            "pages": tally.measured_pages,
            "pages_per_s": round(tally.measured_pages / wall, 2),
            "request_latency_ms": milliseconds(tally.latencies),
            "page_latency_ms": milliseconds(tally.page_latencies, scale=1),
            "api_cpu_s_per_page": round(api_cpu / max(1, tally.pages_returned), 4),
        },
        "api_metrics": metrics,
        "load_average_samples": loads,  # [seconds into the run, 1 min, 5 min, 15 min]
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    _serving.write_record(args.out, record)
    measured = record["measured"]
    print(
        f"{args.clients} clients, {measured['wall_s']} s: {measured['pages_per_s']} pages/s, request latency "
        f"p50 {measured['request_latency_ms']['p50']} ms p99 {measured['request_latency_ms']['p99']} ms; "
        f"answers {dict(tally.statuses)}; pages lost {tally.pages_lost}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
