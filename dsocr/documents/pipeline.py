"""Page images in, page results out: recognition, the retry of pages cut at the token limit, and parsing.

Every page of a document produces exactly one ``PageResult``, whatever happens to it: a page that could not
be rendered or recognised is a ``failed`` result with the reason, and a page that still ends at the token
limit after its retry is an ``incomplete`` result with its text kept. The official PDF script drops such
pages; here nothing is dropped silently.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image

from dsocr.contract import OcrOptions, Recognition, Recognizer
from dsocr.documents.errors import PageError
from dsocr.documents.pages import PageImage
from dsocr.documents.postprocess import MAX_BIN, Box, parse_page


@dataclass(frozen=True)
class BoxResult:
    bins: Box  # as the model emitted it, 0..999 on both axes
    px: Box  # pixels of the page image, computed the way the official scripts do
    pt: tuple[float, float, float, float] | None  # PDF user space (x0, y0, x1, y1), y up; None for image inputs


@dataclass(frozen=True)
class BlockResult:
    label: str
    text: str
    boxes: list[BoxResult]  # usually one; empty when the model's box list was unreadable
    image: str | None = None  # link to the crop of an ``image`` block, as written in the Markdown

    @property
    def bbox(self) -> BoxResult | None:
        """The box around all of the block's boxes."""
        if not self.boxes:
            return None
        if len(self.boxes) == 1:
            return self.boxes[0]
        points = [box.pt for box in self.boxes]
        return BoxResult(
            bins=_union([box.bins for box in self.boxes]),
            px=_union([box.px for box in self.boxes]),
            pt=None if None in points else _union(points),
        )


@dataclass
class PageResult:
    index: int  # 0-based page number in the document
    status: str  # "ok", "incomplete" (still at the token limit after the retry) or "failed"
    error: PageError | None = None
    size_px: tuple[int, int] | None = None
    dpi: float | None = None
    size_pt: tuple[float, float] | None = None
    rotation: int = 0
    box_pt: tuple[float, float, float, float] | None = None
    raw_text: str = ""  # the model's output, special tokens and grounding tags kept
    markdown: str = ""
    blocks: list[BlockResult] = field(default_factory=list)
    malformed: bool = False  # a grounding tag was cut or unreadable; the text is kept
    problems: list[str] = field(default_factory=list)
    finish_reason: str | None = None  # "eos" or "length"; None when nothing was recognised
    attempts: int = 0
    vision_tokens: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    mean_logprob: float | None = None  # None when nothing was recognised
    render_seconds: float | None = None
    recognize_seconds: float | None = None

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def compression_ratio(self) -> float | None:
        return self.generated_tokens / self.vision_tokens if self.vision_tokens else None


def ocr_pages(
    recognizer: Recognizer,
    pages: Iterable[PageImage],
    options: OcrOptions,
    image_link: Callable[[int, int], str] | None = None,
    concurrency: int = 1,
) -> Iterator[tuple[PageImage, PageResult]]:
    """Recognise each page; yields it with its result, in page order, so callers can crop from the image.

    ``image_link(page_number, k)`` names the crop of the k-th image block of a page (page numbers from 1);
    by default it is the official PDF script's name. With ``concurrency`` above 1, that many pages are
    recognised at once in threads (a recognizer that is a server client then keeps the server busy), and
    ``recognizer`` must be thread-safe; pages are still yielded in order, and read from ``pages`` at most
    ``concurrency`` ahead of the one the caller waits for, so rendered pages do not pile up in memory.
    """
    link = image_link or official_image_link
    if concurrency <= 1:
        for page in pages:
            yield page, ocr_page(recognizer, page, options, link)
        return
    executor = ThreadPoolExecutor(concurrency, thread_name_prefix="dsocr-page")

    def started(page: PageImage) -> tuple[PageImage, Future[PageResult]]:
        return page, executor.submit(ocr_page, recognizer, page, options, link)

    pages = iter(pages)
    window: deque[tuple[PageImage, Future[PageResult]]] = deque()
    try:
        window.extend(started(page) for page in itertools.islice(pages, concurrency))
        while window:
            yield _when_done(*window.popleft())
            window.extend(started(page) for page in itertools.islice(pages, 1))  # the next page, if any
    finally:
        # When the caller stops early, pages not started are dropped; the running ones finish in their threads
        # (a recognizer's own deadline bounds them) without the caller waiting for them.
        executor.shutdown(wait=not window, cancel_futures=True)


def _when_done(page: PageImage, result: Future[PageResult]) -> tuple[PageImage, PageResult]:
    return page, result.result()


def official_image_link(page_number: int, k: int) -> str:
    return f"images/{page_number}_{k}.jpg"


def ocr_page(
    recognizer: Recognizer, page: PageImage, options: OcrOptions, image_link: Callable[[int, int], str]
) -> PageResult:
    result = PageResult(
        index=page.index,
        status="failed",
        error=page.error,
        size_px=page.size_px,
        dpi=page.dpi,
        size_pt=page.size_pt,
        rotation=page.rotation,
        box_pt=page.box_pt,
        render_seconds=page.render_seconds,
    )
    if page.image is None:
        return result
    started = time.perf_counter()
    try:
        recognition, result.attempts = _recognize_with_retry(recognizer, page.image, options)
    except Exception as error:  # one page's failure must not lose the document's other pages
        result.error = PageError("recognition_failed", f"{type(error).__name__}: {error}")
        return result
    finally:
        result.recognize_seconds = time.perf_counter() - started
    link = functools.partial(image_link, page.index + 1)
    parsed = parse_page(recognition.text, page.size_px, link)
    result.status = "ok" if recognition.finish_reason == "eos" else "incomplete"
    result.raw_text = recognition.text
    result.markdown = parsed.markdown
    result.blocks = [
        BlockResult(
            label=block.label,
            text=block.text,
            boxes=[BoxResult(bins, px, _to_points(page, bins)) for bins, px in zip(block.boxes, block.boxes_px)],
            image=None if block.image_index is None else link(block.image_index),
        )
        for block in parsed.blocks
    ]
    result.malformed = parsed.malformed
    result.problems = parsed.problems
    result.finish_reason = recognition.finish_reason
    result.vision_tokens = recognition.vision_tokens
    result.prompt_tokens = recognition.prompt_tokens
    result.generated_tokens = recognition.generated_tokens
    result.mean_logprob = recognition.mean_logprob
    return result


def _recognize_with_retry(recognizer: Recognizer, image: Image.Image, options: OcrOptions) -> tuple[Recognition, int]:
    """The recognition and how many attempts it took: one, or two when the first ran into the token limit."""
    recognition = recognizer.recognize(image, options)
    retry = options.retry_ngram
    # Decoding is greedy, so retrying with the same setting would only repeat the same output.
    if recognition.finish_reason != "length" or retry is None or retry == (options.ngram_size, options.ngram_window):
        return recognition, 1
    return recognizer.recognize(image, options.with_ngram(retry)), 2


def _to_points(page: PageImage, bins: Box) -> tuple[float, float, float, float] | None:
    """Bins → PDF points through unrounded pixels, so points keep the precision the bins have."""
    width, height = page.size_px
    x1, y1, x2, y2 = bins
    return page.to_points((x1 / MAX_BIN * width, y1 / MAX_BIN * height, x2 / MAX_BIN * width, y2 / MAX_BIN * height))


def _union(boxes: list) -> tuple:
    return (
        min(box[0] for box in boxes),
        min(box[1] for box in boxes),
        max(box[2] for box in boxes),
        max(box[3] for box in boxes),
    )
