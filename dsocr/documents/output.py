"""One document's results on disk: ``<name>.md``, ``<name>.json`` and the figure crops in ``<name>_images/``.

The JSON is ``dsocr.documents.record``'s ``DocumentRecord`` (its schema: ``schemas/document.schema.json``,
described in docs/output-format.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from dsocr.contract import OcrOptions
from dsocr.documents.pages import PageImage
from dsocr.documents.pipeline import PageResult
from dsocr.documents.record import (
    SCHEMA_VERSION,
    DocumentRecord,
    FileRecord,
    GeneratorRecord,
    ModelRecord,
    OptionsRecord,
    SummaryRecord,
    page_record,
)

#: Between pages in the document Markdown, as the official PDF script writes it.
PAGE_SEPARATOR = "\n\n<--- Page Split --->\n\n"
CROP_JPEG_QUALITY = 95


@dataclass(frozen=True)
class DocumentInfo:
    name: str  # the input's file name
    sha256: str
    size_bytes: int
    kind: str  # "pdf", "png", "jpeg" or "tiff"
    page_count: int  # pages in the file
    page_indices: list[int]  # the pages processed, 0-based


def document_markdown(pages: list[PageResult]) -> str:
    """The pages' Markdown joined by the page separator; failed and incomplete pages say so in a comment."""
    return PAGE_SEPARATOR.join(_page_markdown(page) for page in pages) + "\n"


def _page_markdown(page: PageResult) -> str:
    if page.status == "failed":
        return f"<!-- dsocr: page {page.number} failed ({page.error.code}): {page.error.message} -->"
    if page.status == "incomplete":
        note = f"<!-- dsocr: page {page.number} stopped at the token limit; its text may be incomplete -->"
        return f"{page.markdown}\n\n{note}" if page.markdown else note
    return page.markdown


def document_record(
    info: DocumentInfo, model: dict, options: OcrOptions, dpi: float, pages: list[PageResult], seconds: float
) -> DocumentRecord:
    """The record of one document; ``model`` is ``{"id": ..., "revision": ...}``."""
    return DocumentRecord(
        schema_version=SCHEMA_VERSION,
        generator=GeneratorRecord(name="dsocr", version=version("dsocr")),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        document=FileRecord(
            name=info.name,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            type=info.kind,
            page_count=info.page_count,
            pages=[index + 1 for index in info.page_indices],
        ),
        model=ModelRecord(**model),
        # Every option but retry, which the record keeps as the n-gram setting it stands for: an option added to
        # the contract fails here until the record (and its schema version) has it too.
        options=OptionsRecord(**options.model_dump(exclude={"retry"}), dpi=dpi, retry_ngram=options.retry_ngram),
        summary=SummaryRecord(
            pages=len(pages),
            **{status: sum(page.status == status for page in pages) for status in ("ok", "incomplete", "failed")},
            vision_tokens=sum(page.vision_tokens for page in pages),
            generated_tokens=sum(page.generated_tokens for page in pages),
            seconds=round(seconds, 3),
        ),
        pages=[page_record(page) for page in pages],
    )


class DocumentWriter:
    """Writes one document's outputs into ``directory`` under ``stem``; crops as pages arrive, the rest at the end.

    Files are written whole or not at all (a temporary file renamed into place), so a crash never leaves a
    half-written JSON that looks complete.
    """

    def __init__(self, directory: Path, stem: str):
        self.directory = directory
        self.stem = stem
        self.images_directory = directory / f"{stem}_images"

    def image_link(self, page_number: int, k: int) -> str:
        """Where the Markdown and JSON point for the k-th figure of a page, relative to the Markdown file."""
        return f"{self.images_directory.name}/{page_number}_{k}.jpg"

    def save_crops(self, page: PageImage, result: PageResult) -> None:
        for block in result.blocks:
            if block.image is None:
                continue
            path = self.directory / block.image
            path.parent.mkdir(parents=True, exist_ok=True)
            page.image.crop(_crop_box(block.bbox.px, page.size_px)).save(path, quality=CROP_JPEG_QUALITY)

    def finish(self, record: dict, markdown: str) -> tuple[Path, Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        markdown_path = _write_atomically(self.directory / f"{self.stem}.md", markdown)
        json_path = _write_atomically(
            self.directory / f"{self.stem}.json", json.dumps(record, ensure_ascii=False, indent=2) + "\n"
        )
        return markdown_path, json_path


def _crop_box(box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box ordered and clamped to the image, at least one pixel each way, so every link gets a file."""
    width, height = size
    x1, x2 = sorted((min(max(box[0], 0), width - 1), min(max(box[2], 0), width)))
    y1, y2 = sorted((min(max(box[1], 0), height - 1), min(max(box[3], 0), height)))
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def _write_atomically(path: Path, text: str) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path
