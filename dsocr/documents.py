"""Documents in, page images out: the first stage of the document pipeline.

Uploads are untrusted. The type comes from the bytes, never the file name. Document-level problems (empty,
wrong type, corrupt or encrypted PDF, too many pages, bad page range, undecodable or oversized image) raise a
``DocumentError`` with a stable ``code`` before any page is rendered; page-level problems come back as a
failed ``PageImage`` while the other pages still render.

PDFium can abort the whole process on a malicious file (an allocation failure under a memory limit is a
SIGABRT, not an exception) and is not thread-safe, so every PDFium call, opening included, runs in worker
processes with an address-space limit and a per-page time limit. A worker that dies or hangs is replaced.
Workers are fresh interpreters that import this module only: a worker forked or spawned by
``multiprocessing`` would re-import the caller's main module, torch and all (a second of CPU and hundreds of
MB per worker).
"""

from __future__ import annotations

import itertools
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

#: Resolution DeepSeek's PDF script renders at; PDF units are points, 72 to the inch.
DEFAULT_DPI = 144
POINTS_PER_INCH = 72
#: Longest side of a rendered page. Pages that would be larger are rendered at a lower dpi, so a
#: 200,000-pt page costs one 4096-px bitmap instead of gigabytes.
DEFAULT_MAX_SIDE_PX = 4096
#: Most pages one document may render; checked from the page count before anything is rendered.
DEFAULT_MAX_PAGES = 2000
DEFAULT_WORKERS = 2
DEFAULT_PAGE_TIMEOUT_S = 30.0
#: Address space a render worker may add to its start-up size: a 600-dpi colour scan needs a few hundred MB.
DEFAULT_MEMORY_LIMIT_BYTES = 1 << 30
#: PDF readers accept a ``%PDF-`` header preceded by up to this much junk.
PDF_HEADER_WINDOW = 1024

_IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"II*\x00": "tiff",  # little-endian
    b"MM\x00*": "tiff",  # big-endian
}


class DocumentError(ValueError):
    """A document that cannot be processed at all. ``code`` is stable and machine-readable."""

    code = "document_error"


class EmptyFile(DocumentError):
    code = "empty_file"


class UnsupportedType(DocumentError):
    code = "unsupported_type"


class CorruptPdf(DocumentError):
    code = "corrupt_pdf"


class EncryptedPdf(DocumentError):
    code = "encrypted_pdf"


class NoPages(DocumentError):
    code = "no_pages"


class TooManyPages(DocumentError):
    code = "too_many_pages"


class BadPageRange(DocumentError):
    code = "bad_page_range"


class CorruptImage(DocumentError):
    code = "corrupt_image"


class ImageTooLarge(DocumentError):
    """An image over Pillow's decompression-bomb limit (about 179 million pixels)."""

    code = "image_too_large"


@dataclass(frozen=True)
class PageError:
    """Why one page has no image.

    ``code`` is one of ``render_failed`` (PDFium raised, or the worker died), ``render_timeout`` (over the
    per-page time limit) and ``render_memory`` (over the worker's memory limit).
    """

    code: str
    message: str


@dataclass
class PageImage:
    """One page, rendered, or the reason it could not be.

    The image is an RGB PIL image showing exactly ``box_pt``, turned by ``rotation``; ``to_points`` maps pixel
    boxes back to PDF user space. The geometry fields are None for image inputs and for failed pages.
    """

    index: int  # 0-based page number in the document
    image: Image.Image | None = None
    dpi: float | None = None  # what was used: the requested dpi unless the max-side cap lowered it
    size_pt: tuple[float, float] | None = None  # (width, height) as displayed, i.e. after the rotation
    rotation: int = 0  # the page's /Rotate, clockwise degrees, already applied to the image
    box_pt: tuple[float, float, float, float] | None = None  # CropBox ∩ MediaBox in PDF user space, unrotated
    error: PageError | None = None
    render_seconds: float | None = None  # producing the image: PDF render or image decode; None if it failed

    @property
    def size_px(self) -> tuple[int, int] | None:
        return self.image.size if self.image is not None else None

    def to_points(self, box_px: tuple[float, float, float, float]) -> tuple[float, float, float, float] | None:
        """``(x1, y1, x2, y2)`` in pixels of ``image`` → ``(x0, y0, x1, y1)`` in PDF user space, to 0.01 pt.

        Pixels have their origin at the top left and y running down; PDF points have y running up. None for
        pages without PDF geometry: image inputs and failed pages.
        """
        if self.dpi is None or self.size_pt is None or self.box_pt is None:
            return None
        scale = self.dpi / POINTS_PER_INCH
        width, height = self.size_pt
        left, bottom = self.box_pt[:2]
        xs, ys = [], []
        for x_px, y_px in (box_px[:2], box_px[2:]):
            x, y = x_px / scale, height - y_px / scale  # displayed points, y up
            # The image shows the page turned clockwise, so a 90° page has its bottom-left corner at the top left.
            x, y = {0: (x, y), 90: (height - y, x), 180: (width - x, height - y), 270: (y, width - x)}[self.rotation]
            xs.append(left + x)
            ys.append(bottom + y)
        return tuple(round(value, 2) for value in (min(xs), min(ys), max(xs), max(ys)))


def sniff_type(data: bytes) -> str:
    """The document type judged from its first bytes: "pdf", "png", "jpeg" or "tiff".

    A file name or a client's content type can lie; magic numbers cannot without breaking the file.
    """
    if not data:
        raise EmptyFile("the file is empty")
    for signature, kind in _IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return kind
    if b"%PDF-" in data[:PDF_HEADER_WINDOW]:
        return "pdf"
    raise UnsupportedType("the file is not a PDF, PNG, JPEG or TIFF: none of their signatures is at its start")


def parse_page_ranges(text: str, page_count: int) -> list[int]:
    """``"1-3,7"`` → ``[0, 1, 2, 6]``: 1-based inclusive ranges as people write them, to sorted unique indices."""
    indices: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        start = _page_number(first, part)
        end = _page_number(last, part) if dash else start
        if start > end:
            raise BadPageRange(f"page range {part.strip()!r} is reversed; write it as {end}-{start}")
        if end > page_count:
            raise BadPageRange(f"page range {part.strip()!r} goes past the last page, {page_count}")
        indices.update(range(start - 1, end))
    return sorted(indices)


def _page_number(text: str, part: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise BadPageRange(f"cannot read page range {part.strip()!r}; write pages like 1-3,7")
    number = int(text)
    if number == 0:
        raise BadPageRange(f"page range {part.strip()!r} has page 0; pages are numbered from 1")
    return number


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


@dataclass
class Document:
    """An admitted document: its type is known, its page count is within limits and its page range is valid.

    Iterating it yields one ``PageImage`` per selected page, in page order, rendering the next few pages in
    the background while the caller works on the current one; it can be iterated once. Close it (or use it as
    a context manager) to stop renders still in flight when not every page is read.
    """

    kind: str  # "pdf", "png", "jpeg" or "tiff"
    page_count: int  # pages in the file
    page_indices: list[int]  # 0-based pages that will be yielded, ascending
    pages: Generator[PageImage, None, None]

    def __iter__(self) -> Iterator[PageImage]:
        return self.pages

    def close(self) -> None:
        self.pages.close()

    def __enter__(self) -> Document:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


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
        self._running: list[_Worker] = []
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
        process, by ``dsocr.preprocess.load_image``, with Pillow's decompression-bomb limit in force.
        """
        if dpi <= 0 or max_pages < 1 or max_side_px < 1:
            raise ValueError(f"dpi, max_pages and max_side_px must be positive, got {dpi}, {max_pages}, {max_side_px}")
        kind = sniff_type(data)
        if kind != "pdf":
            return _image_document(data, kind, pages, max_pages)
        key = next(self._document_keys)
        page_count = self._count_pages(data, key)
        indices = _select_pages(pages, page_count, max_pages)
        calls = [_Call(key, self._render_page, (index, dpi, max_side_px)) for index in indices]
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
        with closing(self._run(data, [_Call(key, len)])) as outcomes:
            outcome = next(outcomes)
        if isinstance(outcome, DocumentError):
            raise outcome
        if isinstance(outcome, PageError):
            raise CorruptPdf(f"the PDF could not be opened: {outcome.message}")
        return outcome

    def _render(self, data: bytes, indices: list[int], calls: list[_Call]) -> Generator[PageImage, None, None]:
        with closing(self._run(data, calls)) as outcomes:
            for index, outcome in zip(indices, outcomes):
                yield PageImage(index, error=outcome) if isinstance(outcome, PageError) else outcome

    def _run(self, data: bytes, calls: list[_Call]) -> Generator[object, None, None]:
        """What each call returned, in order, or a PageError for a call whose worker died or ran out of time.

        Calls are dispatched at most two per worker ahead of the one the caller waits for: workers stay busy
        while the caller uses a result, and finished pages do not pile up.
        """
        if self._busy:
            raise RuntimeError("a RenderPool renders one document at a time; finish or close the previous one")
        lookahead = 2 * self.workers
        in_flight: dict[_Worker, tuple[int, float]] = {}  # worker → (call number, deadline)
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

    def _idle(self, in_flight: dict[_Worker, tuple[int, float]]) -> _Worker | None:
        idle = next((worker for worker in self._running if worker not in in_flight), None)
        if idle is None and len(self._running) < self.workers:
            idle = _Worker(self.memory_limit_bytes, start_s=self.page_timeout_s)
            self._running.append(idle)
        return idle

    def _collect(self, in_flight: dict[_Worker, tuple[int, float]], done: dict[int, object]) -> None:
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

    def _died(self, worker: _Worker) -> PageError:
        self._running.remove(worker)
        return _death_error(worker.stop(grace_s=1.0))

    def _retire(self, worker: _Worker) -> None:
        self._running.remove(worker)
        worker.stop(grace_s=0.0)


def _select_pages(pages: str | None, page_count: int, max_pages: int) -> list[int]:
    indices = list(range(page_count)) if pages is None else parse_page_ranges(pages, page_count)
    if len(indices) > max_pages:
        raise TooManyPages(
            f"{len(indices)} pages selected of {page_count}; at most {max_pages} are processed per request, "
            "so select fewer with a page range"
        )
    return indices


def _image_document(data: bytes, kind: str, pages: str | None, max_pages: int) -> Document:
    # Imported here: preprocess pulls in torch, and render workers import this module, so they stay small.
    from dsocr.preprocess import ImageTooLargeError, load_image

    indices = _select_pages(pages, 1, max_pages)
    start = time.perf_counter()
    try:
        image = load_image(data)
    except ImageTooLargeError as error:
        raise ImageTooLarge(str(error)) from error
    except ValueError as error:
        raise CorruptImage(str(error)) from error
    page = PageImage(index=0, image=image, render_seconds=time.perf_counter() - start)
    return Document(kind, 1, indices, _image_pages(page))


def _image_pages(page: PageImage) -> Generator[PageImage, None, None]:
    yield page


@dataclass(frozen=True)
class _Call:
    """Work for a render worker: ``function(document, *args)`` on the document identified by ``document_key``."""

    document_key: int
    function: Callable[..., object]
    args: tuple = ()


class _Worker:
    """One render process and the pool's end of the socket it is served over."""

    def __init__(self, memory_limit_bytes: int | None, start_s: float):
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from dsocr.documents import _worker_main; _worker_main()",
                    str(theirs.fileno()),
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                # The caller's import path, so that a render function from any of its modules can be unpickled.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )
        # With the worker holding the only other end, its death reads as end-of-file.
        self.connection = Connection(ours.detach())
        self.document_key: int | None = None
        self.connection.send(memory_limit_bytes)
        # A worker that cannot start is a setup error to raise, not a page to fail.
        if not self.connection.poll(start_s):
            self.stop(grace_s=0.0)
            raise RuntimeError(f"a render worker did not start within {start_s:g} s")
        try:
            self.connection.recv()
        except EOFError:
            raise RuntimeError(
                f"a render worker failed to start (exit code {self.stop(grace_s=1.0)}); its error is on stderr"
            ) from None

    def send(self, call: _Call, pdf: bytes) -> None:
        """Send ``call``, with the PDF only if this worker does not have that document open already."""
        is_new = call.document_key != self.document_key
        self.connection.send((call, pdf if is_new else None))
        self.document_key = call.document_key

    def stop(self, grace_s: float) -> int:
        """Close the socket, give the process ``grace_s`` to end, kill it if it has not; returns its exit code.

        As with ``multiprocessing``, a negative exit code is the signal that ended the process.
        """
        self.connection.close()
        try:
            return self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def _worker_main() -> None:
    """Entry point of a render worker process; argv[1] is the file descriptor of its socket to the pool."""
    connection = Connection(int(sys.argv[1]))
    _serve(connection, memory_limit_bytes=connection.recv())


def _serve(connection: Connection, memory_limit_bytes: int | None) -> None:
    """Worker loop: open each document once, then answer calls on it until the pool closes the socket.

    Failures go back as values: a DocumentError for the pool to raise, or a PageError for the page.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the workers
    if memory_limit_bytes is not None:
        _limit_address_space(memory_limit_bytes)
    connection.send("ready")
    document_key, document = None, None
    while True:
        try:
            call, pdf = connection.recv()
        except EOFError:
            return
        try:
            if pdf is not None:
                document_key, document = None, None  # release the previous document before opening the next
                document = _open_pdf(pdf)
                document_key = call.document_key
            if call.document_key != document_key:
                raise RuntimeError("the worker has a different document open")  # a pool bug, never a wrong page
            result = call.function(document, *call.args)
        except DocumentError as error:
            result = error
        except MemoryError:
            result = PageError("render_memory", "rendering ran out of memory under the worker's limit")
        except Exception as error:
            result = PageError("render_failed", f"{type(error).__name__}: {error}")
        connection.send(result)


def _limit_address_space(extra_bytes: int) -> None:
    """Let this process map at most ``extra_bytes`` more than it has mapped now.

    Relative to the start-up size, because that depends on what the parent's main module imports.
    """
    in_use = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = in_use + extra_bytes if hard == resource.RLIM_INFINITY else min(in_use + extra_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        raise _open_error(data) from None
    document.init_forms()  # so filled-in form fields show on the page images
    return document


def _open_error(data: bytes) -> DocumentError:
    """Why PDFium will not open ``data``.

    pypdfium2's ``err_code`` cannot say: pypdfium2 also refuses a document that loads but has no pages, and
    PDFium's last error is only set when a load fails, so it may belong to an earlier document. Loading
    again through the C API tells the two cases apart, and a failed load sets a fresh error.
    """
    handle = pdfium_c.FPDF_LoadMemDocument64(data, len(data), None)
    if handle:
        pdfium_c.FPDF_CloseDocument(handle)
        return NoPages("the PDF has no pages")
    reason = pdfium_c.FPDF_GetLastError()
    if reason == pdfium_c.FPDF_ERR_PASSWORD:
        return EncryptedPdf("the PDF is password-protected")
    if reason == pdfium_c.FPDF_ERR_SECURITY:
        return EncryptedPdf("the PDF is encrypted with a security handler PDFium does not support")
    return CorruptPdf("the PDF is damaged or truncated: PDFium cannot read its structure")


def _death_error(exitcode: int) -> PageError:
    """Why a page failed, judged from the exit code of the render worker that died on it."""
    if exitcode == -signal.SIGABRT:
        # Under RLIMIT_AS, PDFium answers a failed allocation by aborting the process rather than raising.
        return PageError("render_memory", "the render worker aborted (SIGABRT), most likely over its memory limit")
    if exitcode == -signal.SIGKILL:
        return PageError("render_memory", "the render worker was killed (SIGKILL), most likely for lack of memory")
    if exitcode < 0:
        return PageError(
            "render_failed", f"the render worker died of signal {-exitcode} ({signal.strsignal(-exitcode)})"
        )
    return PageError("render_failed", f"the render worker died with exit status {exitcode}")
