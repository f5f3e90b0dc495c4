"""Pages through the Triton server, and how many may be in flight.

A page goes through the document pipeline's own ``ocr_page`` (recognition, the retry of a page cut at the
token limit, parsing into blocks and boxes), so the API's pages equal ``dsocr ocr --server``'s. ``ocr_page``
is blocking code: it runs in a worker thread, and its recognizer hands each recognition to the API's asyncio
client on the event loop, where one gRPC channel carries every page.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from dataclasses import dataclass

from PIL import Image

from dsocr.client import AsyncOcrClient, ServerUnavailable
from dsocr.client.tensors import page_bytes
from dsocr.contract import OcrOptions, Recognition
from dsocr.documents.pages import PageImage
from dsocr.documents.pipeline import PageResult, ocr_page, official_image_link

from .metrics import Metrics
from .triton import TritonLink


class PageBudget:
    """Admission control: at most ``capacity`` pages admitted and not finished.

    A request takes all of its pages at once or is refused (``try_take``); a job takes one page at a time and
    waits (``take``). Waiting jobs are served first: a request is refused while one waits, so a stream of
    requests cannot starve the jobs.
    """

    def __init__(self, capacity: int, metrics: Metrics):
        self.capacity, self.metrics = capacity, metrics
        self.in_flight = 0
        self._waiting: collections.deque[asyncio.Future] = collections.deque()

    @property
    def full(self) -> bool:
        return self.in_flight >= self.capacity or bool(self._waiting)

    def try_take(self, pages: int) -> bool:
        if self.full or self.in_flight + pages > self.capacity:
            return False
        self._add(pages)
        return True

    async def take(self) -> None:
        if not self.full:
            self._add(1)
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter  # ``give`` hands its freed page over: it is counted already
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give(1)
            elif waiter in self._waiting:
                self._waiting.remove(waiter)
            raise

    def give(self, pages: int = 1) -> None:
        self._add(-pages)
        while self._waiting and self.in_flight < self.capacity:
            waiter = self._waiting.popleft()
            if not waiter.cancelled():
                self._add(1)
                waiter.set_result(None)

    def _add(self, pages: int) -> None:
        self.in_flight += pages
        self.metrics.in_flight_pages.set(self.in_flight)


@dataclass
class DonePage:
    result: PageResult
    latency_s: float  # from admission to result


class PageRunner:
    """Recognises pages on the server; ``threads`` bounds the pages in flight (one thread waits on each)."""

    def __init__(self, link: TritonLink, metrics: Metrics, threads: int):
        self.link, self.metrics = link, metrics
        self._threads = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="dsocr-api-page")

    async def run(
        self, page: PageImage, options: OcrOptions, *, source: str, admitted_at: float, rendered_at: float
    ) -> DonePage:
        """OCR one rendered (or failed) page; the times are ``time.perf_counter()`` readings of when its work began
        and when its image arrived. Raises ``ServerUnavailable`` when the server could not be reached: the page
        has no result then, and the caller decides (a request answers 503, a job waits)."""
        queue_s = time.perf_counter() - rendered_at
        loop = asyncio.get_running_loop()
        recognizer = LoopRecognizer(self.link.client, loop)
        try:
            result = await loop.run_in_executor(self._threads, ocr_page, recognizer, page, options, official_image_link)
        finally:
            recognizer.cancel()  # a no-op once done; when the caller was cancelled, it ends the page's stream
        if recognizer.unreachable is not None:
            self.link.report_unreachable(str(recognizer.unreachable))
            raise recognizer.unreachable
        if result.finish_reason is not None:
            self.link.page_recognised()
        latency_s = time.perf_counter() - admitted_at
        self.metrics.page_finished(source, options.mode, result, queue_s, latency_s)
        return DonePage(result, latency_s)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


class LoopRecognizer:
    """The pipeline's ``Recognizer`` for a worker thread, recognising on the event loop's client."""

    def __init__(self, client: AsyncOcrClient, loop: asyncio.AbstractEventLoop):
        self.client, self.loop = client, loop
        self.unreachable: ServerUnavailable | None = None
        self._pending: set[concurrent.futures.Future] = set()
        self._cancelled = False

    def recognize(self, image: Image.Image, options: OcrOptions) -> Recognition:
        if self._cancelled:
            raise concurrent.futures.CancelledError()
        data = page_bytes(image)  # PNG-encoded here, in the worker thread, not on the loop
        future = asyncio.run_coroutine_threadsafe(self.client.recognize(data, options), self.loop)
        self._pending.add(future)
        try:
            return future.result()
        except ServerUnavailable as error:
            self.unreachable = error
            raise
        finally:
            self._pending.discard(future)

    def cancel(self) -> None:
        self._cancelled = True
        for future in list(self._pending):
            future.cancel()
