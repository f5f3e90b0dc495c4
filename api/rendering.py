"""Documents to page images behind the event loop: ``dsocr.documents.RenderPool`` with a thread per document.

A RenderPool renders one document at a time, and blocks while it does. So a document being read borrows a
pool from a fixed set, and one thread makes every call on it: opening, then page after page. Pages cross to
the event loop through a queue, and are rendered only as far ahead as the reader allows (``allow``), so a
2,000-page job holds a few rendered pages at a time. The thread gives the pool back when it is done with it,
never earlier: a request cancelled in the middle of a render cannot hand a busy pool to the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from PIL import Image

from dsocr.documents.admission import sniff_type
from dsocr.documents.errors import ImageTooLarge
from dsocr.documents.pages import PageImage
from dsocr.documents.rendering import RenderPool

from .settings import Settings

_END = object()


@dataclass(frozen=True)
class _Opened:
    kind: str
    page_count: int
    page_indices: list[int]


class RenderedDocument:
    """An admitted document (``kind``, ``page_count``, ``page_indices``) whose pages ``async for`` yields in
    order, each rendered once ``allow`` has made room for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._items: asyncio.Queue = asyncio.Queue()
        self._room = threading.Semaphore(0)
        self._stopping = threading.Event()
        self.kind, self.page_count, self.page_indices = "", 0, []

    def allow(self, pages: int = 1) -> None:
        """Let the reader render ``pages`` more pages."""
        self._room.release(pages)

    def stop(self) -> None:
        self._stopping.set()
        self._room.release()

    def __aiter__(self) -> AsyncIterator[PageImage]:
        return self

    async def __anext__(self) -> PageImage:
        item = await self._items.get()
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    async def _wait_opened(self) -> None:
        opened = await self._items.get()
        if isinstance(opened, BaseException):
            raise opened
        self.kind, self.page_count, self.page_indices = opened.kind, opened.page_count, opened.page_indices

    def _read(self, pool: RenderPool, data: bytes, pages: str | None, dpi: float, max_pages: int, max_pixels: int):
        """The document's thread: open, then render a page each time there is room, until done or stopped."""
        try:
            _check_image_pixels(data, max_pixels)
            with pool.open(data, pages, dpi=dpi, max_pages=max_pages) as document:
                self._put(_Opened(document.kind, document.page_count, document.page_indices))
                rendered = iter(document)
                for _ in document.page_indices:
                    self._room.acquire()  # before asking for the page: nothing is rendered for a refused request
                    if self._stopping.is_set():
                        return
                    self._put(next(rendered))
                self._put(_END)
        except BaseException as error:  # DocumentError for the request to answer; anything else is a bug to report
            self._put(error)

    def _put(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the API is shutting down
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)


class RenderPools:
    """``count`` render pools, each lent to one document at a time."""

    def __init__(self, count: int, settings: Settings):
        self.max_image_pixels = settings.max_image_pixels
        self._pools = [
            RenderPool(settings.render_workers, settings.render_timeout_s, settings.render_memory_bytes)
            for _ in range(count)
        ]
        self._idle: asyncio.Queue[RenderPool] = asyncio.Queue()
        for pool in self._pools:
            self._idle.put_nowait(pool)

    @contextlib.asynccontextmanager
    async def open(
        self, data: bytes, pages: str | None, *, dpi: float, max_pages: int
    ) -> AsyncIterator[RenderedDocument]:
        """Admit ``data`` (raises ``DocumentError`` on entering) and render its pages as the caller allows."""
        pool = await self._idle.get()
        loop = asyncio.get_running_loop()
        document = RenderedDocument(loop)

        def read() -> None:
            try:
                document._read(pool, data, pages, dpi, max_pages, self.max_image_pixels)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is closed: the API is shutting down
                    loop.call_soon_threadsafe(self._idle.put_nowait, pool)

        threading.Thread(target=read, name="dsocr-api-render", daemon=True).start()
        try:
            await document._wait_opened()
            yield document
        finally:
            document.stop()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop every pool's workers, once the documents being read have given their pools back."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._idle.qsize() < len(self._pools):
                    await asyncio.sleep(0.05)
        for pool in self._pools:
            await asyncio.to_thread(pool.close)


def _check_image_pixels(data: bytes, limit: int) -> None:
    """The API's own cap on images, below Pillow's bomb limit: an image is decoded in the API process."""
    if sniff_type(data) == "pdf":  # raises for empty and unknown files, as opening them would
        return
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # undecodable, or over Pillow's own limit: opening the document says which
        return
    if width * height > limit:
        raise ImageTooLarge(f"the image is {width}×{height} pixels, over this server's limit of {limit:,}")
