"""What is checked before anything is rendered: the type from the bytes, the page count, the page range.

Uploads are untrusted. The type comes from the bytes, never the file name, and a document that cannot be
processed raises a ``DocumentError`` before any page costs anything.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from dsocr.documents.errors import BadPageRange, CorruptImage, EmptyFile, ImageTooLarge, TooManyPages, UnsupportedType
from dsocr.documents.pages import PageImage
from dsocr.images import ImageTooLargeError, load_image

#: Most pages one document may render; checked from the page count before anything is rendered.
DEFAULT_MAX_PAGES = 2000
#: PDF readers accept a ``%PDF-`` header preceded by up to this much junk.
PDF_HEADER_WINDOW = 1024

_IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"II*\x00": "tiff",  # little-endian
    b"MM\x00*": "tiff",  # big-endian
}


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


def select_pages(pages: str | None, page_count: int, max_pages: int) -> list[int]:
    indices = list(range(page_count)) if pages is None else parse_page_ranges(pages, page_count)
    if len(indices) > max_pages:
        raise TooManyPages(
            f"{len(indices)} pages selected of {page_count}; at most {max_pages} are processed per request, "
            "so select fewer with a page range"
        )
    return indices


def image_document(data: bytes, kind: str, pages: str | None, max_pages: int) -> Document:
    indices = select_pages(pages, 1, max_pages)
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
