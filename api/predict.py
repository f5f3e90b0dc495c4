"""``POST /ocr/predict``: a small document in, its Markdown and layout JSON out, in one request.

Cheap refusals come first: parameters (422), the server down (503), no capacity left (429). Then the document
is opened and checked (413, 415, 422), and admitted only if all of its pages fit in the capacity left. Pages
render in a worker process each and go to the server as they are rendered; a page that cannot be rendered
within its memory or time budget is a failed page in the result, the others go on.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter

from dsocr.client import ServerUnavailable
from dsocr.documents.errors import TooManyPages

from .deps import Services, ServicesDep
from .errors import ApiError, overloaded
from .forms import OcrRequest, OcrRequestDep
from .pages import DonePage
from .rendering import RenderedDocument
from .responses import errors
from .results import ocr_result
from .schemas import OcrResult
from .triton import unavailable

router = APIRouter(prefix="/ocr", tags=["ocr"])

#: Codes of pages that could not be rendered: when no page of a request could, the request is unprocessable.
RENDER_ERRORS = frozenset({"render_failed", "render_timeout", "render_memory"})


@router.post(
    "/predict",
    response_model=OcrResult,
    response_model_exclude_unset=True,
    summary="OCR a small document now",
    responses=errors(400, 401, 413, 415, 422, 429, 503, 504),
)
async def predict(services: ServicesDep, request: OcrRequestDep) -> dict:
    """OCR a PDF (up to ``max_sync_pages`` pages: 16 by default; longer documents go to ``POST /ocr/jobs``), or a
    PNG, JPEG or TIFF image, and answer with the document's Markdown and, per page, its blocks with boxes in page
    pixels and PDF points, token counts, finish reason and latency.

    A page that cannot be rendered within its memory or time budget (a decompression bomb, say) is a failed
    page with its error code, and the other pages go on; if no page could be rendered, the answer is 422 with
    that page's code.
    """
    services.link.require_available()
    if services.budget.full:
        raise _overloaded(services)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(services.settings.page_deadline_s):
            return await _predict(services, request, started)
    except TimeoutError:
        raise ApiError(504, "deadline_exceeded", "the document was not done within the page deadline") from None


async def _predict(services: Services, request: OcrRequest, started: float) -> dict:
    settings = services.settings
    try:
        async with services.renderers.open(
            request.data, request.pages, dpi=request.dpi, max_pages=settings.max_sync_pages
        ) as document:
            pages = len(document.page_indices)
            if not services.budget.try_take(pages):
                raise _overloaded(services)
            try:
                model = await services.link.model()
                document.allow(pages)
                done = await _recognise(services, document, request, started)
            finally:
                services.budget.give(pages)
    except TooManyPages as error:
        raise ApiError(422, error.code, f"{error}, or submit the document as a job (POST /ocr/jobs)") from None
    except ServerUnavailable as error:
        raise unavailable(f"the Triton server at {services.link.url} is unreachable: {error}", settings) from None
    if done and all(page.result.error is not None and page.result.error.code in RENDER_ERRORS for page in done):
        error = done[0].result.error
        raise ApiError(422, error.code, f"no page could be rendered; page {done[0].result.number}: {error.message}")
    info = request.document(document.kind, document.page_count, document.page_indices)
    seconds = time.perf_counter() - started
    return ocr_result(info, model, request.options, request.dpi, done, seconds, request.output)


async def _recognise(
    services: Services, document: RenderedDocument, request: OcrRequest, started: float
) -> list[DonePage]:
    """Every page on the server as soon as it is rendered; the results in page order."""
    runs = []
    try:
        async with asyncio.TaskGroup() as tasks:
            async for page in document:
                run = services.runner.run(
                    page, request.options, source="predict", admitted_at=started, rendered_at=time.perf_counter()
                )
                runs.append(tasks.create_task(run))
    except* ServerUnavailable as outage:
        raise outage.exceptions[0] from None
    return [run.result() for run in runs]


def _overloaded(services: Services) -> ApiError:
    budget = services.budget
    return overloaded(
        f"{budget.in_flight} of {budget.capacity} pages are in flight; try again later",
        services.settings.retry_after_s,
    )
