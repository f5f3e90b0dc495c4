"""Prometheus metrics of the API, on ``GET /metrics``: base units, labels from small fixed sets only.

One registry per app, served by the one process that runs it (no multiprocess mode: run one uvicorn worker
per container and scale out with containers).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dsocr.documents.pipeline import PageResult

from .errors import HTTP_CODES, STATE_KEY

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 150, 300, 600)
STAGES = ("render", "queue", "inference", "total")


class Metrics:
    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "dsocr_api_requests",
            "HTTP requests answered, by route template, status and error code (ok for success)",
            ["route", "status", "code"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "dsocr_api_request_duration_seconds",
            "Time to answer a request",
            ["route"],
            buckets=SECONDS,
            registry=registry,
        )
        self.pages = Counter(
            "dsocr_api_pages",
            "Pages finished, by source (predict, job) and outcome (ok, incomplete, or the failed page's error code)",
            ["source", "outcome"],
            registry=registry,
        )
        self.page_seconds = Histogram(
            "dsocr_api_page_seconds",
            "Time a page spent per stage: render (PDF to image), queue (rendered, waiting for capacity), "
            "inference (on the Triton server, retries included), total (admission to result)",
            ["stage"],
            buckets=SECONDS,
            registry=registry,
        )
        self.vision_tokens = Counter("dsocr_api_vision_tokens", "Vision tokens of recognised pages", registry=registry)
        self.generated_tokens = Counter(
            "dsocr_api_generated_tokens", "Text tokens generated for recognised pages", registry=registry
        )
        self.compression_ratio = Histogram(
            "dsocr_api_compression_ratio",
            "Generated text tokens per vision token, per recognised page",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
            registry=registry,
        )
        self.in_flight_pages = Gauge(
            "dsocr_api_in_flight_pages",
            "Pages admitted and not finished (capacity: max_in_flight_pages)",
            registry=registry,
        )
        self.job_queue_depth = Gauge("dsocr_api_job_queue_depth", "Jobs queued or running", registry=registry)
        self.triton_ready = Gauge(
            "dsocr_api_triton_ready", "1 if the last deep check of the Triton server passed", registry=registry
        )

    def page_finished(self, source: str, result: PageResult, queue_s: float, total_s: float) -> None:
        outcome = result.error.code if result.status == "failed" else result.status
        self.pages.labels(source, outcome).inc()
        for stage, seconds in (
            ("render", result.render_seconds),
            ("queue", queue_s),
            ("inference", result.recognize_seconds),
            ("total", total_s),
        ):
            if seconds is not None:
                self.page_seconds.labels(stage).observe(seconds)
        if result.finish_reason is not None:
            self.vision_tokens.inc(result.vision_tokens)
            self.generated_tokens.inc(result.generated_tokens)
            self.compression_ratio.observe(result.compression_ratio)


class RequestMetrics:
    """ASGI middleware: counts each answered request and times it, by route template (bounded, unlike paths)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            code = scope.get("state", {}).get(STATE_KEY) or ("ok" if status < 400 else HTTP_CODES.get(status, "other"))
            self.metrics.requests.labels(route, str(status), code).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
