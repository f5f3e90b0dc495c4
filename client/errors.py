"""What can go wrong with a page sent to the server, as exceptions a caller can tell apart.

Each also derives from the built-in exception a caller would reach for: a bad page is a ``ValueError``, a
page past its deadline a ``TimeoutError``, an unreachable or overloaded server a ``ConnectionError``.
"""

from __future__ import annotations


class OcrError(Exception):
    """Base of every error the client raises for a page."""


class OcrRequestError(OcrError, ValueError):
    """The server rejected the page or its settings (INVALID_ARG); sending it again would not help."""


class PageDeadlineExceeded(OcrError, TimeoutError):
    """The page was not done within its deadline; it was cancelled on the server."""


class ServerUnavailable(OcrError, ConnectionError):
    """The server could not be reached, or stayed overloaded, through every retry."""


class OcrServerError(OcrError, RuntimeError):
    """The server failed on the page for a reason of its own (INTERNAL and the like)."""
