"""The output record: one document's OCR result as ``<name>.json`` holds it and the HTTP API returns it.

These models are its one description. ``dsocr.documents.output`` writes through them, the API reads stored pages
back through them and extends them with what it adds, and ``schemas/document.schema.json`` is generated from
them (``python -m dsocr.documents.record``; a test fails when the committed file differs). ``schema_version``
changes its major number when a field is removed or changes meaning, and its minor number when fields are
added, so readers can check what they are given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from dsocr.contract import ModeName
from dsocr.documents.errors import PageError
from dsocr.documents.pipeline import BlockResult, BoxResult, PageResult

SCHEMA_VERSION = "1.2"
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "document.schema.json"

#: Integers stay integers: a float-only field would turn a pixel count of 122 into 122.0 in the JSON.
Number = int | float
Bin = Annotated[int, Field(ge=0, le=999)]
Box4 = tuple[Number, Number, Number, Number]
Count = Annotated[int, Field(ge=0)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoxRecord(Record):
    """One region in three coordinate systems."""

    bins: tuple[Bin, Bin, Bin, Bin] = Field(
        description="[x1, y1, x2, y2] as the model emitted it: 0..999 across the page image, origin top-left."
    )
    px: Box4 = Field(description="[x1, y1, x2, y2] in pixels of the page image, origin top-left, y down.")
    pt: Box4 | None = Field(
        description="[x0, y0, x1, y1] in PDF user space (points, y up, x0 <= x1, y0 <= y1); null for image inputs."
    )


class BlockRecord(Record):
    label: str = Field(description="The model's block type, e.g. text, title, table, image, image_caption, equation.")
    text: str = Field(description="The block's content, cleaned like the Markdown (tables stay HTML).")
    bbox: BoxRecord | None = Field(description="The box around all of the block's boxes; null when none could be read.")
    boxes: list[BoxRecord]
    image: str | None = Field(description="For image blocks: the crop's path relative to the Markdown file.")


class ErrorRecord(Record):
    code: Literal["render_failed", "render_timeout", "render_memory", "recognition_failed"]
    message: str


class TimingsRecord(Record):
    render_seconds: Annotated[Number, Field(ge=0)] | None
    recognize_seconds: Annotated[Number, Field(ge=0)] | None = Field(description="All attempts together.")


class PageRecord(Record):
    index: Count = Field(description="0-based page number in the document.")
    number: int = Field(ge=1, description="1-based page number, index + 1.")
    status: Literal["ok", "incomplete", "failed"] = Field(
        description="ok: ended with EOS. incomplete: still at the token limit after its retry; text kept. "
        "failed: see error."
    )
    error: ErrorRecord | None
    width_px: Annotated[int, Field(ge=1)] | None
    height_px: Annotated[int, Field(ge=1)] | None
    dpi: Number | None = Field(
        description="Rendering resolution used; lower than requested for pages over the size cap. Null for image "
        "inputs."
    )
    size_pt: tuple[Number, Number] | None = Field(description="[width, height] in points as displayed (after /Rotate).")
    rotation: Literal[0, 90, 180, 270] = Field(
        description="The page's /Rotate, clockwise degrees, already applied to the image."
    )
    box_pt: Box4 | None = Field(description="The rendered area (CropBox within MediaBox) in PDF user space, unrotated.")
    markdown: str
    raw_text: str = Field(description="The model's output with special tokens and grounding tags.")
    blocks: list[BlockRecord]
    malformed: bool = Field(description="A grounding tag was cut short or unreadable; see problems.")
    problems: list[str]
    finish_reason: Literal["eos", "length"] | None
    attempts: int = Field(
        ge=0, le=2, description="Recognition attempts: 2 when the first ended at the token limit and was retried."
    )
    vision_tokens: Count
    prompt_tokens: Count
    generated_tokens: Count = Field(description="Text tokens the model generated for the page.")
    compression_ratio: Number | None = Field(description="generated_tokens / vision_tokens; null for failed pages.")
    mean_logprob: float | None = Field(
        None,
        le=0,
        description="The model's confidence: mean log-probability of the tokens it picked (the closing EOS "
        "included), of the last attempt; null for failed pages. Added in 1.2.",
    )
    timings: TimingsRecord


class FileRecord(Record):
    name: str = Field(description="The input's file name.")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=1)
    type: Literal["pdf", "png", "jpeg", "tiff"] = Field(description="Judged from the file's bytes, not its name.")
    page_count: int = Field(ge=1, description="Pages in the file.")
    pages: list[Annotated[int, Field(ge=1)]] = Field(description="The pages processed, numbered from 1, ascending.")


class LineageRecord(Record):
    """Where a checkpoint `dsocr train` wrote came from (its lineage.json has everything)."""

    base_model_id: str | None
    base_revision: str | None
    data_sha256: str | None = Field(description="Content hash of the training dataset.")
    steps: int | None
    git_commit: str | None = Field(description="The dsocr commit that trained it, +dirty with local changes.")


class ModelRecord(Record):
    id: str = Field(description="Hub id or checkpoint directory.")
    revision: str | None
    lineage: LineageRecord | None = Field(None, description="Present for a checkpoint trained by `dsocr train`.")


class OptionsRecord(Record):
    mode: ModeName  # type: ignore[valid-type]
    prompt: str = Field(description="A prompt name or the custom prompt text.")
    ref: str | None
    dpi: Number = Field(
        gt=0, description="Requested PDF rendering resolution; a page's own dpi may be lower (see pages[].dpi)."
    )
    max_new_tokens: int = Field(ge=1)
    max_tiles: int = Field(ge=2)
    ngram_size: Count = Field(description="No-repeat n-gram size; 0 means the rule was off.")
    ngram_window: Count
    retry_ngram: tuple[Count, Count] | None = Field(
        description="[size, window] of the retry of a page that hit the token limit; null when pages are not retried."
    )


class SummaryRecord(Record):
    pages: Count
    ok: Count
    incomplete: Count
    failed: Count
    vision_tokens: Count
    generated_tokens: Count
    seconds: Annotated[Number, Field(ge=0)] = Field(description="Wall time for the whole document.")


class GeneratorRecord(Record):
    name: Literal["dsocr"]
    version: str


class DocumentRecord(Record):
    """One document's OCR result as written to <name>.json by `dsocr ocr --out`. See docs/output-format.md."""

    model_config = ConfigDict(extra="forbid", title="dsocr document result")

    schema_version: str = Field(
        pattern=r"^1\.[0-9]+$",
        description="MAJOR.MINOR: the major number changes when a field is removed or changes meaning, the minor "
        "when fields are added.",
    )
    generator: GeneratorRecord
    created: str = Field(
        description="When the result was written, ISO 8601 in UTC.", json_schema_extra={"format": "date-time"}
    )
    document: FileRecord
    model: ModelRecord
    options: OptionsRecord
    summary: SummaryRecord
    pages: list[PageRecord]


def page_record(page: PageResult) -> PageRecord:
    width, height = page.size_px or (None, None)
    return PageRecord(
        index=page.index,
        number=page.number,
        status=page.status,
        error=ErrorRecord(code=page.error.code, message=page.error.message) if page.error else None,
        width_px=width,
        height_px=height,
        dpi=page.dpi,
        size_pt=page.size_pt,
        rotation=page.rotation,
        box_pt=page.box_pt,
        markdown=page.markdown,
        raw_text=page.raw_text,
        blocks=[_block_record(block) for block in page.blocks],
        malformed=page.malformed,
        problems=page.problems,
        finish_reason=page.finish_reason,
        attempts=page.attempts,
        vision_tokens=page.vision_tokens,
        prompt_tokens=page.prompt_tokens,
        generated_tokens=page.generated_tokens,
        compression_ratio=page.compression_ratio,
        mean_logprob=None if page.mean_logprob is None else round(page.mean_logprob, 6),
        timings=TimingsRecord(render_seconds=page.render_seconds, recognize_seconds=page.recognize_seconds),
    )


def page_result(record: PageRecord) -> PageResult:
    """``page_record`` undone: the page as the pipeline made it (pages the API's job store kept)."""
    return PageResult(
        index=record.index,
        status=record.status,
        error=PageError(record.error.code, record.error.message) if record.error else None,
        size_px=(record.width_px, record.height_px) if record.width_px is not None else None,
        dpi=record.dpi,
        size_pt=record.size_pt,
        rotation=record.rotation,
        box_pt=record.box_pt,
        raw_text=record.raw_text,
        markdown=record.markdown,
        blocks=[
            BlockResult(block.label, block.text, [_box_result(box) for box in block.boxes], block.image)
            for block in record.blocks
        ],
        malformed=record.malformed,
        problems=list(record.problems),
        finish_reason=record.finish_reason,
        attempts=record.attempts,
        vision_tokens=record.vision_tokens,
        prompt_tokens=record.prompt_tokens,
        generated_tokens=record.generated_tokens,
        mean_logprob=record.mean_logprob,
        render_seconds=record.timings.render_seconds,
        recognize_seconds=record.timings.recognize_seconds,
    )


def _block_record(block: BlockResult) -> BlockRecord:
    bbox = block.bbox  # a union, computed on each access
    return BlockRecord(
        label=block.label,
        text=block.text,
        bbox=_box_record(bbox) if bbox else None,
        boxes=[_box_record(box) for box in block.boxes],
        image=block.image,
    )


def _box_record(box: BoxResult) -> BoxRecord:
    return BoxRecord(bins=box.bins, px=box.px, pt=box.pt)


def _box_result(box: BoxRecord) -> BoxResult:
    return BoxResult(box.bins, box.px, box.pt)


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``DocumentRecord``, as committed in ``schemas/document.schema.json``."""
    schema = DocumentRecord.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:dsocr:schema:document:{SCHEMA_VERSION.split('.')[0]}",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    # python -m dsocr.documents.record [--write]: print the schema, or write it over the committed one.
    if sys.argv[1:] == ["--write"]:
        SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    else:
        sys.stdout.write(schema_text())
