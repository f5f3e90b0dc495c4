"""The API's typed requests and responses.

An OCR result is the record ``dsocr ocr`` writes (``dsocr.documents.record``, docs/output-format.md), with what
the HTTP API adds: the document's ``markdown`` beside the record, and each
page's ``latency_ms``. ``output=markdown`` leaves ``pages`` out, ``output=json`` leaves ``markdown`` out.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dsocr.documents.record import DocumentRecord, PageRecord

Output = Literal["markdown", "json", "both"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(PageRecord):
    """A page of the output record, plus how long the API took over it."""

    latency_ms: float = Field(description="from the page's admission to its result, rendering included")


_BOX = {"bins": [100, 40, 900, 90], "px": [122, 63, 1102, 142], "pt": [61.26, 720.65, 551.35, 760.29]}
_PAGE_EXAMPLE = {
    "index": 0,
    "number": 1,
    "status": "ok",
    "error": None,
    "width_px": 1224,
    "height_px": 1584,
    "dpi": 144.0,
    "size_pt": [612.0, 792.0],
    "rotation": 0,
    "box_pt": [0.0, 0.0, 612.0, 792.0],
    "markdown": "# Quarterly report",
    "raw_text": "<|ref|>title<|/ref|><|det|>[[100, 40, 900, 90]]<|/det|>\n# Quarterly report",
    "blocks": [{"label": "title", "text": "# Quarterly report", "bbox": _BOX, "boxes": [_BOX], "image": None}],
    "malformed": False,
    "problems": [],
    "finish_reason": "eos",
    "attempts": 1,
    "vision_tokens": 903,
    "prompt_tokens": 912,
    "generated_tokens": 12,
    "compression_ratio": 0.0133,
    "mean_logprob": -0.0832,
    "timings": {"render_seconds": 0.041, "recognize_seconds": 1.52},
    "latency_ms": 1604.2,
}
_RESULT_EXAMPLE = {
    "schema_version": "1.2",
    "generator": {"name": "dsocr", "version": "0.1.0"},
    "created": "2026-11-26T10:00:00+00:00",
    "document": {
        "name": "report.pdf",
        "sha256": "9f2c" + "0" * 60,
        "size_bytes": 182734,
        "type": "pdf",
        "page_count": 1,
        "pages": [1],
    },
    "model": {"id": "deepseek-ai/DeepSeek-OCR", "revision": None, "lineage": None},
    "options": {
        "mode": "gundam",
        "prompt": "markdown",
        "ref": None,
        "dpi": 144,
        "max_new_tokens": 8192,
        "max_tiles": 6,
        "ngram_size": 30,
        "ngram_window": 90,
        "retry_ngram": [20, 50],
    },
    "summary": {
        "pages": 1,
        "ok": 1,
        "incomplete": 0,
        "failed": 0,
        "vision_tokens": 903,
        "generated_tokens": 12,
        "seconds": 1.61,
    },
    "markdown": "# Quarterly report\n",
    "pages": [_PAGE_EXAMPLE],
}


class OcrResult(DocumentRecord):
    """One document's OCR: the output schema's record, plus the document Markdown."""

    model_config = ConfigDict(extra="forbid", title="OcrResult", json_schema_extra={"examples": [_RESULT_EXAMPLE]})

    markdown: str | None = Field(None, description="pages joined by the page separator; left out for output=json")
    pages: list[Page] | None = Field(None, description="left out for output=markdown")


class Error(Strict):
    code: str = Field(description="stable and machine-readable; see docs/api.md")
    message: str = Field(description="for people; may change")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"code": "encrypted_pdf", "message": "the PDF is password-protected"}]},
    )


class Job(Strict):
    job_id: str
    status: JobState
    pages_total: int
    pages_done: int = Field(description="pages with a result, failed pages included")
    pages_failed: int
    created: str
    started: str | None
    finished: str | None
    error: Error | None = Field(description="why a job failed; for a Triton outage it is queued again, not failed")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "job_id": "0b1e0d3c6f7a4c1b9a4b2f1e5d6c7b8a",
                    "status": "running",
                    "pages_total": 50,
                    "pages_done": 12,
                    "pages_failed": 0,
                    "created": "2026-11-26T10:00:00+00:00",
                    "started": "2026-11-26T10:00:01+00:00",
                    "finished": None,
                    "error": None,
                }
            ]
        },
    )


class Live(Strict):
    status: Literal["live"] = "live"


class Ready(Strict):
    ready: bool
    detail: str = Field(description="what the last deep check of the Triton server found")
    checked_seconds_ago: float | None
    canary_seconds: float | None = Field(description="how long the last check took, canary page included")
