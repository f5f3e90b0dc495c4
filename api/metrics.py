"""Prometheus metrics of the API, on ``GET /metrics``: base units, labels from small fixed sets only.

One registry per app, served by the one process that runs it (no multiprocess mode: run one uvicorn worker
per container and scale out with containers).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dsocr.documents.pipeline import PageResult

from .errors import HTTP_CODES, STATE_KEY
from .quality import SIGNALS, DriftMonitor

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 150, 300, 600)
STAGES = ("render", "queue", "inference", "total")
TOKENS = (16, 64, 100, 256, 400, 800, 1200, 2000, 4000, 8192)
#: Mean log-probability per token: 0 is certainty; random weights sit near -log(vocabulary), about -11.
LOGPROB = (-12, -8, -6, -4, -3, -2, -1.5, -1, -0.5, -0.25, -0.1, -0.05, -0.01, 0)


class Metrics:
    def __init__(self, drift: DriftMonitor):
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)  # process_start_time_seconds: the canary alert's start-up grace
        self.drift = drift
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
            ["mode"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
            registry=registry,
        )
        self.page_vision_tokens = Histogram(
            "dsocr_api_page_vision_tokens",
            "Vision tokens per recognised page",
            ["mode"],
            buckets=TOKENS,
            registry=registry,
        )
        self.page_generated_tokens = Histogram(
            "dsocr_api_page_generated_tokens",
            "Text tokens generated per recognised page",
            ["mode"],
            buckets=TOKENS,
            registry=registry,
        )
        self.page_mean_logprob = Histogram(
            "dsocr_api_page_mean_logprob",
            "Confidence: mean log-probability of the tokens picked for a recognised page",
            ["mode"],
            buckets=LOGPROB,
            registry=registry,
        )
        self.page_finish = Counter(
            "dsocr_api_page_finish",
            "Recognised pages by how decoding ended: eos, or length (still at the token limit: a loop)",
            ["reason"],
            registry=registry,
        )
        self.retried_pages = Counter(
            "dsocr_api_retried_pages", "Pages decoded twice: the first attempt hit the token limit", registry=registry
        )
        self.quality_drift = Gauge(
            "dsocr_quality_drift",
            "Standardized shift of the last window of pages from the baseline (0 until both exist)",
            ["signal"],
            registry=registry,
        )
        self.quality_window_mean = Gauge(
            "dsocr_quality_window_mean",
            "Mean of each signal over the last window of pages",
            ["signal"],
            registry=registry,
        )
        self.quality_baseline_mean = Gauge(
            "dsocr_quality_baseline_mean",
            "Each signal's baseline mean (0 until recorded)",
            ["signal"],
            registry=registry,
        )
        self.quality_baseline_pages = Gauge(
            "dsocr_quality_baseline_pages", "Pages the baseline was taken from (0: not recorded yet)", registry=registry
        )
        for signal in SIGNALS:  # every series exists from start-up, so queries and alerts see it
            for gauge in (self.quality_drift, self.quality_window_mean, self.quality_baseline_mean):
                gauge.labels(signal)
        for reason in ("eos", "length"):
            self.page_finish.labels(reason)
        self.canary_cer = Gauge("dsocr_canary_cer", "Mean CER of the last canary run", registry=registry)
        self.canary_ned = Gauge(
            "dsocr_canary_ned", "Mean normalized edit distance of the last canary run", registry=registry
        )
        self.canary_loop_rate = Gauge(
            "dsocr_canary_loop_rate", "Share of canary pages at the token limit in the last run", registry=registry
        )
        self.canary_seconds = Gauge("dsocr_canary_duration_seconds", "Time the last canary run took", registry=registry)
        self.canary_last_run = Gauge(
            "dsocr_canary_last_run_timestamp_seconds",
            "When the last canary run started (0: none yet)",
            registry=registry,
        )
        self.canary_last_success = Gauge(
            "dsocr_canary_last_success_timestamp_seconds",
            "When the last canary run that scored its pages started (0: none yet)",
            registry=registry,
        )
        self.canary_last_run_ok = Gauge(
            "dsocr_canary_last_run_ok", "1 if the last canary run scored its pages, 0 if it failed", registry=registry
        )
        self._publish_baseline()
        self.in_flight_pages = Gauge(
            "dsocr_api_in_flight_pages",
            "Pages admitted and not finished (capacity: max_in_flight_pages)",
            registry=registry,
        )
        self.job_queue_depth = Gauge("dsocr_api_job_queue_depth", "Jobs queued or running", registry=registry)
        self.triton_ready = Gauge(
            "dsocr_api_triton_ready", "1 if the last deep check of the Triton server passed", registry=registry
        )

    def page_finished(self, source: str, mode: str, result: PageResult, queue_s: float, total_s: float) -> None:
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
        if result.finish_reason is None:
            return
        self.vision_tokens.inc(result.vision_tokens)
        self.generated_tokens.inc(result.generated_tokens)
        self.compression_ratio.labels(mode).observe(result.compression_ratio)
        self.page_vision_tokens.labels(mode).observe(result.vision_tokens)
        self.page_generated_tokens.labels(mode).observe(result.generated_tokens)
        self.page_mean_logprob.labels(mode).observe(result.mean_logprob)
        self.page_finish.labels(result.finish_reason).inc()
        if result.attempts > 1:
            self.retried_pages.inc()
        self._observe_drift(result)

    def _observe_drift(self, result: PageResult) -> None:
        had_baseline = self.drift.baseline is not None
        self.drift.observe(result)
        if not had_baseline:
            self._publish_baseline()
        window_mean, drift = self.drift.snapshot()
        for signal, value in (window_mean or {}).items():
            self.quality_window_mean.labels(signal).set(value)
        for signal, value in (drift or {}).items():
            self.quality_drift.labels(signal).set(value)

    def _publish_baseline(self) -> None:
        baseline = self.drift.baseline
        if baseline is not None:
            self.quality_baseline_pages.set(baseline.pages)
            for signal, value in baseline.mean.items():
                self.quality_baseline_mean.labels(signal).set(value)

    def canary_finished(self, summary: dict | None, started: float, seconds: float) -> None:
        """A canary run's outcome: ``summary`` is ``dsocr eval``'s, None when the run failed."""
        self.canary_last_run.set(started)
        self.canary_seconds.set(seconds)
        self.canary_last_run_ok.set(0 if summary is None else 1)
        if summary is not None:
            self.canary_last_success.set(started)
            self.canary_cer.set(summary["cer"]["mean"])
            self.canary_ned.set(summary["ned"]["mean"])
            self.canary_loop_rate.set(summary["loop_rate"])


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
