"""Jobs in the background: ``job_workers`` loops take queued jobs from the store and run their pages that have
no result yet, ``job_page_concurrency`` at a time; a loop delivers webhooks; one deletes old jobs.

A job whose server becomes unreachable is queued again and picked up once the server is back; a job cancelled
by its owner has its pages in flight cancelled on the server. Stopping the API leaves running jobs marked
running: the next start queues them again (see ``store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.error
import urllib.request

from dsocr.client import ServerUnavailable
from dsocr.contract import OcrOptions
from dsocr.documents.errors import DocumentError
from dsocr.documents.pages import PageImage

from .metrics import Metrics
from .pages import PageBudget, PageRunner
from .rendering import RenderedDocument, RenderPools
from .results import job_view, page_json
from .settings import Settings
from .store import JobRow, JobStore
from .triton import TritonLink

log = logging.getLogger("dsocr.api")

IDLE_POLL_S = 1.0
HOUSEKEEPING_S = 600.0


class JobEvents:
    """Wakes whoever waits on a job (its page stream) when the job gains a page or changes state."""

    def __init__(self):
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, job_id: str) -> None:
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()

    async def wait(self, job_id: str, timeout_s: float) -> None:
        event = self._events.setdefault(job_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)


class JobWorker:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        renderers: RenderPools,
        runner: PageRunner,
        budget: PageBudget,
        link: TritonLink,
        metrics: Metrics,
        events: JobEvents,
    ):
        self.settings, self.store, self.renderers, self.runner = settings, store, renderers, runner
        self.budget, self.link, self.metrics, self.events = budget, link, metrics, events
        self._running: dict[str, asyncio.Task] = {}
        self._job_queued = asyncio.Event()
        self._job_finished = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        requeued = self.store.requeue_running()
        if requeued:
            log.info("%d unfinished job(s) from a previous run queued again", requeued)
        loops = [self._take_jobs() for _ in range(self.settings.job_workers)]
        self._tasks = [asyncio.create_task(loop) for loop in (*loops, self._deliver_webhooks(), self._housekeeping())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def job_queued(self) -> None:
        self._job_queued.set()

    def cancel(self, job_id: str) -> None:
        """Stop a job's run, cancelling its pages in flight (the store already marks it cancelled)."""
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()
        self._job_finished.set()

    # --- running jobs -------------------------------------------------------------------------------------

    async def _take_jobs(self) -> None:
        while True:
            job = await asyncio.to_thread(self.store.claim_next) if self.link.available else None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._job_queued.wait(), IDLE_POLL_S)
                self._job_queued.clear()
                continue
            run = asyncio.create_task(self._run(job))
            self._running[job.id] = run
            try:
                await asyncio.wait([run])  # unlike awaiting it, tells the job's cancellation from our own
            except asyncio.CancelledError:  # the API is stopping: the job stays running, to go on at the next start
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
                raise
            finally:
                self._running.pop(job.id, None)

    async def _run(self, job: JobRow) -> None:
        """Run a job's pages that have no result, then finish it; on an outage, queue it again."""
        options = job.ocr_options
        self.events.notify(job.id)
        try:
            if job.model is None:
                await asyncio.to_thread(self.store.set_model, job.id, await self.link.model())
            done = await asyncio.to_thread(self.store.done_pages, job.id)
            pending = [index for index in job.page_indices if index not in done]
            if pending:
                data = await asyncio.to_thread(self.store.upload, job.id)
                await self._run_pages(job, data, pending, options)
            await self._finish(job, "succeeded")
        except ServerUnavailable as error:
            log.warning("job %s waits for the Triton server: %s", job.id, error)
            await asyncio.to_thread(
                self.store.defer, job.id, self.settings.health_retry_s, "triton_unavailable", str(error)
            )
            self.events.notify(job.id)
        except DocumentError as error:  # admitted when submitted, so only if the limits changed since
            await self._finish(job, "failed", error.code, str(error))
        except Exception as error:
            log.exception("job %s failed", job.id)
            await self._finish(job, "failed", "internal_error", f"{type(error).__name__}: {error}")

    async def _run_pages(self, job: JobRow, data: bytes, pending: list[int], options: OcrOptions) -> None:
        window = self.settings.job_page_concurrency
        ranges = page_ranges(pending)
        dpi = job.dpi
        try:
            async with (
                self.renderers.open(data, ranges, dpi=dpi, max_pages=len(pending)) as document,
                asyncio.TaskGroup() as pages,
            ):
                document.allow(window)
                async for page in document:
                    rendered_at = time.perf_counter()
                    await self.budget.take()
                    pages.create_task(self._run_page(job, page, options, document, rendered_at))
        except* ServerUnavailable as outage:
            raise outage.exceptions[0] from None

    async def _run_page(
        self, job: JobRow, page: PageImage, options: OcrOptions, document: RenderedDocument, rendered_at: float
    ) -> None:
        try:
            started_at = rendered_at - (page.render_seconds or 0.0)
            done = await self.runner.run(page, options, source="job", admitted_at=started_at, rendered_at=rendered_at)
        finally:
            self.budget.give()
        failed = done.result.status == "failed"
        if await asyncio.to_thread(self.store.add_page, job.id, page.index, failed, page_json(done)):
            self.events.notify(job.id)
        document.allow(1)

    async def _finish(self, job: JobRow, status: str, code: str | None = None, message: str | None = None) -> None:
        if await asyncio.to_thread(self.store.finish, job.id, status, code, message):
            self._job_finished.set()
        self.events.notify(job.id)

    # --- webhooks and clean-up ----------------------------------------------------------------------------

    async def _deliver_webhooks(self) -> None:
        """POST each finished job's status to its webhook URL; retried with growing waits, then given up."""
        while True:
            for job in await asyncio.to_thread(self.store.due_webhooks):
                body = job_view(job)
                delivered = await asyncio.to_thread(post_json, job.webhook_url, body, self.settings.webhook_timeout_s)
                attempts = job.webhook_attempts + 1
                retry_in = None if delivered or attempts >= self.settings.webhook_attempts else min(300, 2**attempts)
                if not delivered:
                    log.warning("webhook of job %s to %s failed (attempt %d)", job.id, job.webhook_url, attempts)
                await asyncio.to_thread(self.store.webhook_tried, job.id, delivered, retry_in)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._job_finished.wait(), IDLE_POLL_S)
            self._job_finished.clear()

    async def _housekeeping(self) -> None:
        while True:
            purged = await asyncio.to_thread(self.store.purge, time.time() - self.settings.job_retention_s)
            if purged:
                log.info("deleted %d job(s) finished more than %.0f s ago", purged, self.settings.job_retention_s)
            await asyncio.sleep(HOUSEKEEPING_S)


def page_ranges(indices: list[int]) -> str:
    """0-based pages → the "1-3,7" form ``dsocr.documents.parse_page_ranges`` reads."""
    runs: list[list[int]] = []
    for number in (index + 1 for index in sorted(indices)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


def post_json(url: str, body: dict, timeout_s: float) -> bool:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "dsocr-api"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False
