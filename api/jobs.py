"""``/ocr/jobs``: documents of any length, OCR'd in the background, durable across restarts.

``POST`` checks the document as ``/ocr/predict`` does (up to ``max_job_pages`` pages) and stores it with its
options; the job then runs page by page (see ``worker``) while ``GET`` reports progress, ``GET …/pages``
streams page results as they finish, ``GET …/result`` gives the whole result once done and ``DELETE``
cancels it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Header, Query, Response
from fastapi import Path as PathParam
from pydantic import AnyHttpUrl

from .deps import ServicesDep
from .errors import ApiError, overloaded
from .forms import OcrRequestDep
from .responses import errors
from .results import done_page, job_view, ocr_result
from .schemas import Job, OcrResult, Output, Page
from .store import IdempotencyConflict, JobRow, NewJob, QueueFull, stored_options

router = APIRouter(prefix="/ocr/jobs", tags=["jobs"])

#: How often a page stream looks at the store when no page arrives (another process may be running the job).
STREAM_POLL_S = 1.0


async def existing_job(services: ServicesDep, job_id: Annotated[str, PathParam(max_length=64)]) -> JobRow:
    job = await asyncio.to_thread(services.store.get, job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return job


JobDep = Annotated[JobRow, Depends(existing_job)]


@router.post(
    "",
    status_code=202,
    response_model=Job,
    summary="Submit a document as a job",
    responses=errors(400, 401, 409, 413, 415, 422, 429),
)
async def create_job(
    services: ServicesDep,
    request: OcrRequestDep,
    response: Response,
    webhook_url: Annotated[
        AnyHttpUrl | None, Form(description="called with the job's status (POST, JSON) once it has finished")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=255, description="the same key with the same file and options returns the same job"),
    ] = None,
) -> dict:
    """Queue a PDF (up to ``max_job_pages`` pages) or an image for OCR; answers 202 with the job's id at once.

    The job and every page result are stored durably: after a restart of the API, unfinished jobs continue where
    they stopped. With an ``Idempotency-Key``, sending the same request again (say, after a timeout) returns the
    job the first one made, with ``Idempotent-Replayed: true``; the same key with another file or other options
    is refused with 409 ``idempotency_conflict``.
    """
    settings = services.settings
    async with services.renderers.open(
        request.data, request.pages, dpi=request.dpi, max_pages=settings.max_job_pages
    ) as document:
        pass  # opened and checked; its pages are rendered when the job runs
    new = NewJob(
        file_name=request.file_name,
        file_sha256=request.sha256,
        size_bytes=len(request.data),
        kind=document.kind,
        page_count=document.page_count,
        page_indices=document.page_indices,
        options=stored_options(request.options, request.dpi, request.output),
        webhook_url=str(webhook_url) if webhook_url else None,
        idempotency_key=idempotency_key,
    )
    try:
        job, created = await asyncio.to_thread(services.store.create, new, request.data, settings.max_queued_jobs)
    except IdempotencyConflict as error:
        raise ApiError(409, "idempotency_conflict", str(error)) from None
    except QueueFull as error:
        raise overloaded(str(error), settings.retry_after_s, code="job_queue_full") from None
    if created:
        services.worker.job_queued()
    else:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/ocr/jobs/{job.id}"
    return job_view(job)


@router.get("/{job_id}", response_model=Job, summary="A job's status and progress", responses=errors(401, 404, 422))
async def get_job(job: JobDep) -> dict:
    return job_view(job)


@router.get(
    "/{job_id}/result",
    response_model=OcrResult,
    response_model_exclude_unset=True,
    summary="A finished job's result",
    responses=errors(401, 404, 409, 422),
)
async def get_result(
    services: ServicesDep,
    job: JobDep,
    output: Annotated[Output | None, Query(description="default: what the job was submitted with")] = None,
) -> dict:
    """The same result ``/ocr/predict`` gives, once the job has succeeded; 409 before (``job_not_finished``) and
    for a cancelled or failed job (``job_cancelled``, ``job_failed``)."""
    if not job.finished:
        raise ApiError(
            409,
            "job_not_finished",
            f"job {job.id} is {job.status}: {job.pages_done} of {len(job.page_indices)} pages done",
        )
    if job.status != "succeeded":
        reason = f": {job.error_message}" if job.error_message else ""
        raise ApiError(409, f"job_{job.status}", f"job {job.id} {job.status}{reason}; it has no result")
    pages = [done_page(record) for record in await asyncio.to_thread(services.store.pages, job.id)]
    seconds = job.finished_at - (job.started_at or job.created_at)
    return ocr_result(job.document, job.model, job.ocr_options, job.dpi, pages, seconds, output or job.output)


@router.get(
    "/{job_id}/pages",
    summary="Stream a job's page results as they finish (JSON Lines)",
    responses=errors(401, 404, 422),
)
async def stream_pages(services: ServicesDep, job: JobDep) -> AsyncIterable[Page]:
    """One page result per line (NDJSON, ``application/jsonl``), in the order they finished: first those done
    already, then each as it is done. The stream ends when the job has finished."""
    seen = 0
    while True:
        current = await asyncio.to_thread(services.store.get, job.id)
        for seen, record in await asyncio.to_thread(services.store.pages_after, job.id, seen):
            yield record
        if current is None or current.finished:  # read before the pages: none can have come after them
            return
        await services.events.wait(job.id, STREAM_POLL_S)


@router.delete("/{job_id}", response_model=Job, summary="Cancel a job", responses=errors(401, 404, 409, 422))
async def cancel_job(services: ServicesDep, job: JobDep) -> dict:
    """Cancel a queued or running job: its pages in flight are cancelled on the server; the pages done so far stay
    readable on its page stream. 409 ``job_finished`` for a job that has finished already."""
    if not await asyncio.to_thread(services.store.finish, job.id, "cancelled"):
        raise ApiError(409, "job_finished", f"job {job.id} has finished already")
    services.worker.cancel(job.id)
    services.events.notify(job.id)
    return job_view(await asyncio.to_thread(services.store.get, job.id))
