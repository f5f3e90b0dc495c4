"""The API's line to the Triton server: one ``AsyncOcrClient`` (one gRPC channel), the deep health check run on a
schedule, and the server's model lineage.

Requests are refused with 503 at once while the last check failed, instead of each waiting out its retries:
a stopped server is noticed by the next check, or sooner by the first page that finds it unreachable, and
a server that comes back by the next check (every ``health_retry_s`` while it is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from dsocr.client import AsyncOcrClient, Health, check_health_async, lineage_async

from .errors import ApiError
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("dsocr.api")

#: A replaced client is closed this much later, so that pages still on it end on their own.
CLOSE_REPLACED_AFTER_S = 30.0


class TritonLink:
    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings, self.metrics = settings, metrics
        self.url = settings.triton_url
        self.client = self._new_client()
        self.health = Health(False, "not checked yet", 0.0)
        self.checked_at: float | None = None
        self._model: dict | None = None
        self._last_page_at = float("-inf")
        self._check_now = asyncio.Event()
        self._closing: set[asyncio.Task] = set()

    @property
    def available(self) -> bool:
        return self.health.ok

    def require_available(self) -> None:
        """Raise the 503 a request gets while the server is unreachable or fails its check."""
        if not self.health.ok:
            raise unavailable(f"the Triton server at {self.url} is not ready: {self.health.detail}", self.settings)

    def report_unreachable(self, detail: str) -> None:
        """A page found the server unreachable: refuse new work now, and check again at once."""
        if self.health.ok:
            log.warning("Triton server %s unreachable: %s", self.url, detail)
        self._record(Health(False, detail, 0.0))
        self._check_now.set()

    async def model(self) -> dict:
        """``{"id", "revision"}`` of the checkpoint the server runs, for the result record; read once per connection."""
        if self._model is None:
            self._model = await lineage_async(self.url, timeout_s=self.settings.health_deadline_s)
        return self._model

    def page_recognised(self) -> None:
        """A page came back from the server: as good a sign of health as a canary page."""
        self._last_page_at = time.monotonic()

    async def check(self) -> Health:
        """Run the deep check (live, ready, a canary page through the ensemble) and record what it found.

        A canary page that waited too long behind a full queue does not make a busy server unhealthy: when pages
        came back while it waited, the server is working.
        """
        started = time.monotonic()
        health = await check_health_async(self.url, deadline_s=self.settings.health_deadline_s)
        if not health.ok and self._last_page_at >= started:
            health = Health(
                True, f"busy: pages are recognised, the canary page was not ({health.detail})", health.latency_s
            )
        recovered = health.ok and not self.health.ok and self.checked_at is not None
        self._record(health)
        if recovered:
            log.info("Triton server %s is back: %s", self.url, health.detail)
            self._reconnect()
        return health

    async def watch(self) -> None:
        """Check again and again (after a first ``check``): every ``health_interval_s`` while healthy, every
        ``health_retry_s`` while not, and at once when a page reports the server unreachable."""
        while True:
            interval = self.settings.health_interval_s if self.health.ok else self.settings.health_retry_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check_now.wait(), interval)
            self._check_now.clear()
            try:
                await self.check()
            except Exception:  # never let the watcher die: the API would stay in its last state
                log.exception("health check of %s failed", self.url)

    async def close(self) -> None:
        for task in self._closing:
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self.client.close()

    def _record(self, health: Health) -> None:
        self.health, self.checked_at = health, time.monotonic()
        self.metrics.triton_ready.set(1 if health.ok else 0)

    def _reconnect(self) -> None:
        """A fresh channel after an outage: gRPC's reconnect backoff on the old one can outlast the outage by
        minutes. The old client is closed a little later; its lineage may belong to another model now."""
        old, self.client, self._model = self.client, self._new_client(), None

        async def close_later() -> None:
            try:
                await asyncio.sleep(CLOSE_REPLACED_AFTER_S)
            finally:
                await old.close()

        task = asyncio.create_task(close_later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _new_client(self) -> AsyncOcrClient:
        return AsyncOcrClient(
            self.url,
            deadline_s=self.settings.page_deadline_s,
            retries=self.settings.triton_retries,
            max_in_flight=self.settings.max_in_flight_pages,
            backoff_s=0.25,
        )


def unavailable(message: str, settings: Settings) -> ApiError:
    return ApiError(503, "triton_unavailable", message, {"Retry-After": str(settings.retry_after_s)})
