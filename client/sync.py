"""The synchronous client: ``AsyncOcrClient`` on an event loop of its own, in a background thread.

``OcrClient`` implements ``dsocr.pipeline.Recognizer``, so the document pipeline runs against a server as it
does against an in-process model. Any number of threads may call ``recognize`` at once; their pages share
one gRPC channel and the async client's bound on pages in flight.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future

from dsocr.contract import ENSEMBLE, OcrOptions, Recognition

from .aio import DEFAULT_URL, AsyncOcrClient
from .tensors import PageSource, page_bytes


class OcrClient:
    """Thread-safe, blocking ``recognize`` against the ensemble; see ``AsyncOcrClient`` for the settings."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        model: str = ENSEMBLE,
        *,
        deadline_s: float = 600.0,
        retries: int = 3,
        max_in_flight: int = 32,
        backoff_s: float = 0.5,
    ):
        self._client = AsyncOcrClient(
            url, model, deadline_s=deadline_s, retries=retries, max_in_flight=max_in_flight, backoff_s=backoff_s
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dsocr-ocr-client", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def max_in_flight(self) -> int:
        return self._client.max_in_flight

    def recognize(self, image: PageSource, options: OcrOptions | None = None) -> Recognition:
        """OCR one page on the server; raises what ``AsyncOcrClient.recognize`` raises."""
        return _result(self._submit(image, options))

    def recognize_many(
        self, images: Iterable[PageSource], options: OcrOptions | None = None, *, concurrency: int | None = None
    ) -> Iterator[Recognition]:
        """The pages' recognitions in input order, up to ``concurrency`` (default ``max_in_flight``) at once.

        Images are taken from ``images`` only as pages finish, never more than ``concurrency`` ahead. A page
        that fails raises its error at its place in the order; pages still in flight then are cancelled, as
        they are when the caller stops iterating.
        """
        window: deque[Future] = deque()
        limit = concurrency or self.max_in_flight
        try:
            for image in images:
                if len(window) == limit:
                    yield _result(window.popleft())
                window.append(self._submit(image, options))
            while window:
                yield _result(window.popleft())
        finally:
            for future in window:
                future.cancel()

    def close(self) -> None:
        """Cancel the pages still in flight (their callers get ``CancelledError``), close the channel, end the
        loop's thread."""
        if self._closed:
            return
        self._closed = True
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> OcrClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _submit(self, image: PageSource, options: OcrOptions | None) -> Future:
        if self._closed:
            raise RuntimeError("the OcrClient is closed")
        # Encoded here, in the caller's thread, so many callers encode their pages in parallel instead of
        # taking turns on the loop's one thread.
        data = page_bytes(image)
        return asyncio.run_coroutine_threadsafe(self._client.recognize(data, options), self._loop)

    async def _shutdown(self) -> None:
        pages = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pages:
            task.cancel()
        await asyncio.gather(*pages, return_exceptions=True)
        await self._client.close()


def _result(future: Future) -> Recognition:
    try:
        return future.result()
    finally:
        # A caller interrupted while waiting (KeyboardInterrupt) leaves nothing running on the server.
        future.cancel()
