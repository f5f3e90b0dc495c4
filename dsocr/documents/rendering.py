"""PDF pages in, page images out: ``RenderPool`` renders with PDFium in worker processes under limits.

PDFium can abort the whole process on a malicious file (an allocation failure under a memory limit is a
SIGABRT, not an exception) and is not thread-safe, so every PDFium call, opening included, runs in worker
processes (``dsocr.documents.workers``) with an address-space limit and a per-page time limit. A worker that
dies or hangs is replaced, and its page fails while the other pages still render.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from multiprocessing.connection import wait

import pypdfium2 as pdfium

from dsocr.documents.admission import DEFAULT_MAX_PAGES, Document, image_document, select_pages, sniff_type
from dsocr.documents.errors import CorruptPdf, DocumentError, PageError
from dsocr.documents.pages import POINTS_PER_INCH, PageImage
from dsocr.documents.workers import Call, Worker, death_error

#: Resolution DeepSeek's PDF script renders at.
DEFAULT_DPI = 144
#: Longest side of a rendered page. Pages that would be larger are rendered at a lower dpi, so a
#: 200,000-pt page costs one 4096-px bitmap instead of gigabytes.
DEFAULT_MAX_SIDE_PX = 4096
DEFAULT_WORKERS = 2
DEFAULT_PAGE_TIMEOUT_S = 30.0
#: Address space a render worker may add to its start-up size: a 600-dpi colour scan needs a few hundred MB.
DEFAULT_MEMORY_LIMIT_BYTES = 1 << 30


def render_page(document: pdfium.PdfDocument, index: int, dpi: float, max_side_px: int) -> PageImage:
    """Rasterise page ``index`` to RGB at ``dpi``, lowered so that the longest side is at most ``max_side_px``.

    Runs inside a render worker; ``RenderPool`` accepts a replacement with this signature (tests inject one
    that crashes).
    """
    page = document[index]
    try:
        size_pt = page.get_size()  # PDFium reports the displayed size, after /Rotate
        scale = _render_scale(max(size_pt), dpi, max_side_px)
        start = time.perf_counter()
        image = page.render(scale=scale, rev_byteorder=True).to_pil()  # RGB bytes straight from PDFium: no conversion
        return PageImage(
            index=index,
            image=image,
            render_seconds=time.perf_counter() - start,
            dpi=scale * POINTS_PER_INCH,
            size_pt=size_pt,
            rotation=page.get_rotation(),
            box_pt=page.get_bbox(),  # unlike get_mediabox, this follows boxes inherited from the page tree
        )
    finally:
        page.close()


def _render_scale(longest_pt: float, dpi: float, max_side_px: int) -> float:
    scale = dpi / POINTS_PER_INCH
    if longest_pt * scale > max_side_px:
        scale = max_side_px / longest_pt
        # PDFium rounds the bitmap size up, so floating-point error must not make the cap one pixel larger.
        while longest_pt * scale > max_side_px:
            scale = math.nextafter(scale, 0)
    return scale


@contextmanager
def open_document(
    data: bytes,
    pages: str | None = None,
    *,
    dpi: float = DEFAULT_DPI,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_side_px: int = DEFAULT_MAX_SIDE_PX,
    workers: int = DEFAULT_WORKERS,
    page_timeout_s: float = DEFAULT_PAGE_TIMEOUT_S,
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
) -> Iterator[Document]:
    """Open one document with render workers of its own, stopped when the ``with`` block ends::

        with open_document(data, pages="1-3") as document:
            for page in document:
                ...

    ``DocumentError`` raises on entering the block. A server handling many documents should keep one
    ``RenderPool`` and call its ``open`` instead, so that workers are not started for every document.
    """
    with (
        RenderPool(workers, page_timeout_s, memory_limit_bytes) as pool,
        pool.open(data, pages, dpi=dpi, max_pages=max_pages, max_side_px=max_side_px) as document,
    ):
        yield document


class RenderPool:
    """Worker processes that open and render PDFs, each its own PDFium user.

    Workers start on first use. One that dies, runs past ``page_timeout_s`` (which also bounds opening a PDF)
    or is left with work nobody will read is replaced, and its page fails with a ``PageError`` while the
    other pages carry on. A pool renders one document at a time and is not thread-safe: give each thread its
    own.

    ``memory_limit_bytes`` is the address space (RLIMIT_AS, Linux) each worker may add to its size at
    start-up; None lifts the limit. ``render_page`` is what workers call for each page; it must be a
    module-level function so it can be pickled.
    """

    def __init__(
        self,
        workers: int = DEFAULT_WORKERS,
        page_timeout_s: float = DEFAULT_PAGE_TIMEOUT_S,
        memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
        render_page: Callable[[pdfium.PdfDocument, int, float, int], PageImage] = render_page,
    ):
        if workers < 1 or page_timeout_s <= 0 or (memory_limit_bytes is not None and memory_limit_bytes <= 0):
            raise ValueError(
                "workers, page_timeout_s and memory_limit_bytes must be positive, "
                f"got {workers}, {page_timeout_s}, {memory_limit_bytes}"
            )
        self.workers = workers
        self.page_timeout_s = page_timeout_s
        self.memory_limit_bytes = memory_limit_bytes
        self._render_page = render_page
        self._running: list[Worker] = []
        self._document_keys = itertools.count()
        self._busy = False  # a run is under way; results on the sockets belong to it

    def open(
        self,
        data: bytes,
        pages: str | None = None,
        *,
        dpi: float = DEFAULT_DPI,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_side_px: int = DEFAULT_MAX_SIDE_PX,
    ) -> Document:
        """Admit ``data`` (PDF, PNG, JPEG or TIFF) and return it with the pages chosen by ``pages``, e.g. "1-3,7".

        Raises ``DocumentError`` before anything is rendered. PDF pages render at ``dpi``, lowered for a page
        whose longest side would exceed ``max_side_px``. An image becomes one page as decoded, in this
        process, by ``dsocr.images.load_image``, with Pillow's decompression-bomb limit in force.
        """
        if dpi <= 0 or max_pages < 1 or max_side_px < 1:
            raise ValueError(f"dpi, max_pages and max_side_px must be positive, got {dpi}, {max_pages}, {max_side_px}")
        kind = sniff_type(data)
        if kind != "pdf":
            return image_document(data, kind, pages, max_pages)
        key = next(self._document_keys)
        page_count = self._count_pages(data, key)
        indices = select_pages(pages, page_count, max_pages)
        calls = [Call(key, self._render_page, (index, dpi, max_side_px)) for index in indices]
        return Document("pdf", page_count, indices, self._render(data, indices, calls))

    def close(self) -> None:
        for worker in self._running:
            worker.stop(grace_s=1.0)  # an idle worker exits when its socket closes
        self._running.clear()

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _count_pages(self, data: bytes, key: int) -> int:
        with closing(self._run(data, [Call(key, len)])) as outcomes:
            outcome = next(outcomes)
        if isinstance(outcome, DocumentError):
            raise outcome
        if isinstance(outcome, PageError):
            raise CorruptPdf(f"the PDF could not be opened: {outcome.message}")
        return outcome

    def _render(self, data: bytes, indices: list[int], calls: list[Call]) -> Generator[PageImage, None, None]:
        with closing(self._run(data, calls)) as outcomes:
            for index, outcome in zip(indices, outcomes):
                yield PageImage(index, error=outcome) if isinstance(outcome, PageError) else outcome

    def _run(self, data: bytes, calls: list[Call]) -> Generator[object, None, None]:
        """What each call returned, in order, or a PageError for a call whose worker died or ran out of time.

        Calls are dispatched at most two per worker ahead of the one the caller waits for: workers stay busy
        while the caller uses a result, and finished pages do not pile up.
        """
        if self._busy:
            raise RuntimeError("a RenderPool renders one document at a time; finish or close the previous one")
        lookahead = 2 * self.workers
        in_flight: dict[Worker, tuple[int, float]] = {}  # worker → (call number, deadline)
        done: dict[int, object] = {}
        dispatched = 0
        self._busy = True
        try:
            for number in range(len(calls)):
                while number not in done:
                    while dispatched < min(len(calls), number + lookahead) and (worker := self._idle(in_flight)):
                        try:
                            worker.send(calls[dispatched], data)
                            in_flight[worker] = (dispatched, time.monotonic() + self.page_timeout_s)
                        except OSError:  # it died while idle
                            done[dispatched] = self._died(worker)
                        dispatched += 1
                    if in_flight:
                        self._collect(in_flight, done)
                yield done.pop(number)
        finally:
            # Left running, an abandoned call would answer the next document's first call.
            for worker in in_flight:
                self._retire(worker)
            self._busy = False

    def _idle(self, in_flight: dict[Worker, tuple[int, float]]) -> Worker | None:
        idle = next((worker for worker in self._running if worker not in in_flight), None)
        if idle is None and len(self._running) < self.workers:
            idle = Worker(self.memory_limit_bytes, start_s=self.page_timeout_s)
            self._running.append(idle)
        return idle

    def _collect(self, in_flight: dict[Worker, tuple[int, float]], done: dict[int, object]) -> None:
        """Wait until an in-flight call returns, its worker dies or its deadline passes; record the outcome."""
        first_deadline = min(deadline for _, deadline in in_flight.values())
        ready = wait([worker.connection for worker in in_flight], timeout=max(0.0, first_deadline - time.monotonic()))
        for worker in [worker for worker in in_flight if worker.connection in ready]:
            number, _ = in_flight.pop(worker)
            try:
                done[number] = worker.connection.recv()
            except (EOFError, OSError):
                done[number] = self._died(worker)
        now = time.monotonic()
        for worker, (number, deadline) in list(in_flight.items()):
            if deadline <= now:
                del in_flight[worker]
                self._retire(worker)
                done[number] = PageError("render_timeout", f"rendering took longer than {self.page_timeout_s:g} s")

    def _died(self, worker: Worker) -> PageError:
        self._running.remove(worker)
        return death_error(worker.stop(grace_s=1.0))

    def _retire(self, worker: Worker) -> None:
        self._running.remove(worker)
        worker.stop(grace_s=0.0)
