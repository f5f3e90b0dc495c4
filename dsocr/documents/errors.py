"""What can be wrong with a document as a whole, and with one of its pages.

Document-level problems raise a ``DocumentError`` whose ``code`` is stable and machine-readable (the CLI prints
it, the API answers with it); a page that cannot be rendered carries a ``PageError`` while the other pages go on.
"""

from __future__ import annotations

from dataclasses import dataclass


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
