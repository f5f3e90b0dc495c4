"""A document's result as the API returns it: the record and Markdown of ``dsocr.output``, for pages recognised
just now or read back from the job store."""

from __future__ import annotations

from datetime import UTC, datetime

from dsocr.documents import PageError
from dsocr.output import DocumentInfo, document_markdown, document_record, page_record
from dsocr.pipeline import BlockResult, BoxResult, OcrOptions, PageResult

from .pages import DonePage
from .store import JobRow


def page_json(page: DonePage) -> dict:
    """A page of the result: its record in the output schema, plus ``latency_ms``."""
    return {**page_record(page.result), "latency_ms": round(1000 * page.latency_s, 1)}


def done_page(record: dict) -> DonePage:
    """``page_json`` undone: the page as the pipeline made it, from its record (pages kept by the job store)."""
    error, timings = record["error"], record["timings"]
    width, height = record["width_px"], record["height_px"]
    result = PageResult(
        index=record["index"],
        status=record["status"],
        error=PageError(error["code"], error["message"]) if error else None,
        size_px=(width, height) if width is not None else None,
        dpi=record["dpi"],
        size_pt=tuple(record["size_pt"]) if record["size_pt"] else None,
        rotation=record["rotation"],
        box_pt=tuple(record["box_pt"]) if record["box_pt"] else None,
        raw_text=record["raw_text"],
        markdown=record["markdown"],
        blocks=[
            BlockResult(block["label"], block["text"], [_box(box) for box in block["boxes"]], block["image"])
            for block in record["blocks"]
        ],
        malformed=record["malformed"],
        problems=list(record["problems"]),
        finish_reason=record["finish_reason"],
        attempts=record["attempts"],
        vision_tokens=record["vision_tokens"],
        prompt_tokens=record["prompt_tokens"],
        generated_tokens=record["generated_tokens"],
        render_seconds=timings["render_seconds"],
        recognize_seconds=timings["recognize_seconds"],
    )
    return DonePage(result, record["latency_ms"] / 1000)


def _box(box: dict) -> BoxResult:
    return BoxResult(tuple(box["bins"]), tuple(box["px"]), tuple(box["pt"]) if box["pt"] else None)


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
    record = document_record(info, model, options, dpi, results, seconds)
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
