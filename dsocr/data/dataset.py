"""The dataset format: a folder with ``manifest.jsonl``, one page per line, and the files it names.

Each line is ``{"source": "images/p1.png", "page": 1, "ground_truth": "...", "tags": {...}}``: ``source`` is a
PDF or image path relative to the folder, ``page`` is 1-based (for PDFs), ``ground_truth`` the page's Markdown.
A dataset's content hash covers the manifest and the bytes of every file it names, so it is the same on every
machine and changes with any page.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dsocr.images import load_image

MANIFEST = "manifest.jsonl"
#: PDF pages are rendered at the resolution ``dsocr ocr`` uses by default.
PDF_DPI = 144

TagValue = str | int | float | bool


class DatasetError(ValueError):
    """A dataset folder or manifest line that cannot be used, named by file and line."""


class PageEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, description="PDF or image path, relative to the dataset folder")
    page: int = Field(1, ge=1)
    ground_truth: str
    blocks: list[dict] | None = None
    tags: dict[str, TagValue] = Field(default_factory=dict)


class Dataset:
    def __init__(self, root: Path, entries: list[PageEntry]):
        self.root = root
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def load(cls, root: str | Path) -> Dataset:
        root = Path(root)
        manifest = root / MANIFEST
        if not manifest.is_file():
            raise DatasetError(f"{root}: not a dataset (no {MANIFEST})")
        entries = []
        for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{manifest}:{number}"
            try:
                entry = PageEntry.model_validate_json(line)
            except ValidationError as err:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in err.errors())
                raise DatasetError(f"{where}: {problems}") from None
            path = PurePosixPath(entry.source)
            if path.is_absolute() or ".." in path.parts:
                raise DatasetError(f"{where}: source {entry.source!r} must be a path inside the dataset folder")
            if not (root / path).is_file():
                raise DatasetError(f"{where}: source {entry.source!r} does not exist")
            entries.append(entry)
        if not entries:
            raise DatasetError(f"{manifest}: no pages")
        return cls(root, entries)

    def open_page(self, index: int) -> Image.Image:
        """The entry's page as an RGB image: the image file, or the PDF page rendered at ``PDF_DPI``."""
        entry = self.entries[index]
        path = self.root / entry.source
        if path.read_bytes()[:5] != b"%PDF-":
            return load_image(path)
        import pypdfium2

        document = pypdfium2.PdfDocument(path)
        try:
            if entry.page > len(document):
                raise DatasetError(f"{path}: has {len(document)} pages, the manifest asks for page {entry.page}")
            return document[entry.page - 1].render(scale=PDF_DPI / 72).to_pil().convert("RGB")
        finally:
            document.close()


def write_manifest(root: Path, entries: list[PageEntry]) -> None:
    lines = [entry.model_dump_json(exclude_none=True) for entry in entries]
    (Path(root) / MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")


def dataset_hash(root: str | Path) -> str:
    """SHA-256 over each page's canonical manifest entry and the bytes of its file, in manifest order."""
    dataset = Dataset.load(root)
    digest = hashlib.sha256()
    for entry in dataset.entries:
        digest.update(json.dumps(entry.model_dump(mode="json"), sort_keys=True).encode() + b"\n")
        digest.update(hashlib.sha256((dataset.root / entry.source).read_bytes()).digest())
    return digest.hexdigest()
