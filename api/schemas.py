"""The API's typed requests and responses.

An OCR result is the record ``dsocr ocr`` writes (``dsocr/schemas/document.schema.json``, docs/output-format.md),
typed here field for field, with what the HTTP API adds: the document's ``markdown`` beside the record, and each
page's ``latency_ms``. ``output=markdown`` leaves ``pages`` out, ``output=json`` leaves ``markdown`` out.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["tiny", "small", "base", "large", "gundam"]
Output = Literal["markdown", "json", "both"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Box4 = list[float]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Box(Strict):
    bins: list[int] = Field(description="[x1, y1, x2, y2] as the model wrote it: 0-999 across the page image")
    px: Box4 = Field(description="[x1, y1, x2, y2] in pixels of the page image, origin top-left, y down")
    pt: Box4 | None = Field(description="[x0, y0, x1, y1] in PDF points, y up; null for image inputs")


class Block(Strict):
    label: str = Field(description="the model's block type: text, title, table, image, image_caption, …")
    text: str
    bbox: Box | None = Field(description="the box around all of the block's boxes; null when none was readable")
    boxes: list[Box]
    image: str | None = Field(description="figure blocks: the crop's name as linked from the Markdown (not served)")


class PageError(Strict):
    code: Literal["render_failed", "render_timeout", "render_memory", "recognition_failed"]
    message: str


class Timings(Strict):
    render_seconds: float | None
    recognize_seconds: float | None


class Page(Strict):
    index: int = Field(description="0-based page number in the document")
    number: int = Field(description="1-based page number")
    status: Literal["ok", "incomplete", "failed"]
    error: PageError | None
    width_px: int | None
    height_px: int | None
    dpi: float | None = Field(description="resolution the page was rendered at; null for image inputs")
    size_pt: list[float] | None = Field(description="[width, height] in points as displayed")
    rotation: Literal[0, 90, 180, 270]
    box_pt: Box4 | None = Field(description="the rendered area in PDF user space")
    markdown: str
    raw_text: str
    blocks: list[Block]
    malformed: bool
    problems: list[str]
    finish_reason: Literal["eos", "length"] | None
    attempts: int
    vision_tokens: int
    prompt_tokens: int
    generated_tokens: int = Field(description="text tokens the model generated for the page")
    compression_ratio: float | None = Field(description="generated_tokens / vision_tokens")
    timings: Timings
    latency_ms: float = Field(description="from the page's admission to its result, rendering included")


class DocumentInfo(Strict):
    name: str
    sha256: str
    size_bytes: int
    type: Literal["pdf", "png", "jpeg", "tiff"]
    page_count: int
    pages: list[int] = Field(description="the pages processed, numbered from 1")


class ModelInfo(Strict):
    id: str
    revision: str | None


class Options(Strict):
    mode: Mode
    prompt: str
    ref: str | None
    dpi: float
    max_new_tokens: int
    max_tiles: int
    ngram_size: int
    ngram_window: int
    retry_ngram: list[int] | None


class Summary(Strict):
    pages: int
    ok: int
    incomplete: int
    failed: int
    vision_tokens: int
    generated_tokens: int
    seconds: float


class Generator(Strict):
    name: Literal["dsocr"]
    version: str


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
    "timings": {"render_seconds": 0.041, "recognize_seconds": 1.52},
    "latency_ms": 1604.2,
}
_RESULT_EXAMPLE = {
    "schema_version": "1.0",
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
    "model": {"id": "deepseek-ai/DeepSeek-OCR", "revision": None},
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


class OcrResult(Strict):
    """One document's OCR: the output schema's record, plus the document Markdown."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_RESULT_EXAMPLE]})

    schema_version: str
    generator: Generator
    created: str
    document: DocumentInfo
    model: ModelInfo
    options: Options
    summary: Summary
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
