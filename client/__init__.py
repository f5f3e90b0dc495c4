"""Talking to the Triton ensemble over gRPC: pages in, ``Recognition`` results out.

``OcrClient`` (synchronous, thread-safe) implements ``dsocr.pipeline.Recognizer``; ``AsyncOcrClient`` is the
asyncio client underneath. ``check_health`` runs a canary page through the ensemble; ``lineage`` reads which
checkpoint the server runs.
"""

from .aio import DEFAULT_URL, AsyncOcrClient
from .errors import OcrError, OcrRequestError, OcrServerError, PageDeadlineExceeded, ServerUnavailable
from .health import Health, check_health, check_health_async
from .lineage import lineage, lineage_async
from .sync import OcrClient

__all__ = [
    "DEFAULT_URL",
    "AsyncOcrClient",
    "Health",
    "OcrClient",
    "OcrError",
    "OcrRequestError",
    "OcrServerError",
    "PageDeadlineExceeded",
    "ServerUnavailable",
    "check_health",
    "check_health_async",
    "lineage",
    "lineage_async",
]
