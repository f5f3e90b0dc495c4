"""A document's result as the API returns it: the record and Markdown of ``dsocr.documents.output``, for pages recognised
just now or read back from the job store."""

from __future__ import annotations

from datetime import UTC, datetime

from dsocr.contract import OcrOptions
from dsocr.documents.output import DocumentInfo, document_markdown, document_record
from dsocr.documents.record import page_record, page_result

from .pages import DonePage
from .schemas import Page
from .store import JobRow


def page_json(page: DonePage) -> dict:
    """A page of the result: its record in the output schema, plus ``latency_ms``."""
    return {**page_record(page.result).model_dump(mode="json"), "latency_ms": round(1000 * page.latency_s, 1)}


def done_page(record: dict) -> DonePage:
    """``page_json`` undone: the page as the pipeline made it, from its record (pages kept by the job store)."""
    page = Page.model_validate(record)
    return DonePage(page_result(page), page.latency_ms / 1000)


def ocr_result(
    info: DocumentInfo,
    model: dict,
    options: OcrOptions,
    dpi: float,
    pages: list[DonePage],
    seconds: float,
    output: str,
) -> dict:
    """The response body: the document record with ``markdown`` beside it, trimmed to what ``output`` asks for."""
    results = [page.result for page in pages]
    record = document_record(info, model, options, dpi, results, seconds).model_dump(mode="json")
    record["pages"] = [page_json(page) for page in pages]
    if output != "json":
        record["markdown"] = document_markdown(results)
    if output == "markdown":
        del record["pages"]
    return record


def job_view(job: JobRow) -> dict:
    """A job's state as ``GET /ocr/jobs/{id}`` and its webhook give it."""
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return {
        "job_id": job.id,
        "status": job.status,
        "pages_total": len(job.page_indices),
        "pages_done": job.pages_done,
        "pages_failed": job.pages_failed,
        "created": _timestamp(job.created_at),
        "started": _timestamp(job.started_at),
        "finished": _timestamp(job.finished_at),
        "error": error,
    }


def _timestamp(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
