"""The dataset format that training and evaluation share: a folder with ``manifest.jsonl`` and the pages it names.

Each line of the manifest is one page: ``{"source": "images/0001.png", "page": 1, "ground_truth": "...", "blocks":
[...], "tags": {...}}``. Sources are paths relative to the folder, so a dataset can be copied, archived or hashed
as a unit; ``dataset_hash`` names its content (manifest and source bytes), so a training run can record exactly
which pages it read.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import pypdfium2 as pdfium
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dsocr.images import load_image

MANIFEST = "manifest.jsonl"
#: Resolution DeepSeek's PDF script (and ``dsocr ocr``) renders PDF pages at: the pixels block boxes refer to.
DEFAULT_DPI = 144
_PDF_MAGIC = b"%PDF-"

TagValue = str | int | float | bool


class DatasetError(ValueError):
    """A dataset that cannot be read as it is; the message names the file (and line) at fault."""


class Block(BaseModel):
    """One layout region of a page: what it is, where it is (page pixels, ``[x0, y0, x1, y1]``) and its text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    bbox: tuple[float, float, float, float]
    text: str = ""

    @field_validator("bbox")
    @classmethod
    def _ordered(cls, bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = bbox
        if x1 < x0 or y1 < y0:
            raise ValueError(f"bbox {list(bbox)} is not [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1")
        return bbox


class PageEntry(BaseModel):
    """One manifest line: a page of ``source`` (1-based ``page``) and the Markdown the model should read off it."""

    # Unknown keys are refused: a misspelt "groundtruth" must not load as a page without ground truth.
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    page: int = Field(default=1, ge=1)
    ground_truth: str
    blocks: list[Block] | None = None
    tags: dict[str, TagValue] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _inside_the_dataset(cls, source: str) -> str:
        if not source:
            raise ValueError("source is empty")
        if (
            PurePosixPath(source).is_absolute()
            or PureWindowsPath(source).is_absolute()
            or PureWindowsPath(source).drive
        ):
            raise ValueError(f"source {source!r} is absolute; it must be a path inside the dataset folder")
        normal = posixpath.normpath(source.replace("\\", "/"))
        if normal == ".." or normal.startswith("../"):
            raise ValueError(f"source {source!r} leaves the folder; it must be a path inside the dataset folder")
        return normal

    def canonical_line(self) -> str:
        """The entry as one JSON line, defaults filled in and keys sorted: equal entries give equal lines."""
        record = self.model_dump(mode="json", exclude_none=True)
        return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class Dataset:
    """A loaded dataset: its folder and its entries, in manifest order."""

    def __init__(self, root: Path, entries: list[PageEntry], line_numbers: list[int]):
        self.root = root
        self.entries = entries
        self.line_numbers = line_numbers  # of each entry in the manifest, for error messages
        self._hash: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        """Read ``path/manifest.jsonl`` (or ``path`` itself if it is the manifest) and check every source exists.

        Page numbers are checked when a page is opened: that needs each PDF parsed.
        """
        path = Path(path)
        manifest = path if path.is_file() else path / MANIFEST
        if not manifest.is_file():
            raise DatasetError(f"{manifest}: no such file (a dataset is a folder with {MANIFEST})")
        root = manifest.parent
        entries, line_numbers = [], []
        with manifest.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                entry = _parse_line(line, f"{manifest}:{number}")
                if not (root / entry.source).is_file():
                    raise DatasetError(f"{manifest}:{number}: source {entry.source!r} does not exist in {root}")
                entries.append(entry)
                line_numbers.append(number)
        if not entries:
            raise DatasetError(f"{manifest}: the manifest lists no pages")
        return cls(root, entries, line_numbers)

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[PageEntry]:
        return iter(self.entries)

    def __getitem__(self, index: int) -> PageEntry:
        return self.entries[index]

    def source_path(self, entry: PageEntry) -> Path:
        return self.root / entry.source

    def open_page(self, index: int, dpi: float = DEFAULT_DPI) -> Image.Image:
        """Entry ``index``'s page as an RGB image: an image source as it is, a PDF page rendered at ``dpi``."""
        entry = self.entries[index]
        try:
            return open_page(self.source_path(entry), entry.page, dpi)
        except DatasetError as error:
            raise DatasetError(f"{self.manifest}:{self.line_numbers[index]}: {error}") from None

    def hash(self) -> str:
        """``dataset_hash`` of these entries, computed once: the gate and the evaluation of a run both ask."""
        if self._hash is None:
            self._hash = _content_hash(self)
        return self._hash


def open_page(source: Path, page: int = 1, dpi: float = DEFAULT_DPI) -> Image.Image:
    """Page ``page`` (1-based) of ``source`` as an RGB image; an image file has one page, a PDF is rendered at ``dpi``.

    Dataset PDFs are the project's own files, so they are rendered here in process, not in the sandboxed workers
    that ``dsocr.documents`` keeps for documents from outside (which this layer may not import).
    """
    data = source.read_bytes()
    if not data.startswith(_PDF_MAGIC):
        if page != 1:
            raise DatasetError(f"{source.name}: page {page} of an image, which has only page 1")
        try:
            return load_image(data)
        except ValueError as error:
            raise DatasetError(f"{source.name}: {error}") from None
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        raise DatasetError(f"{source.name}: not a readable PDF ({error})") from None
    try:
        if page > len(document):
            raise DatasetError(f"{source.name}: page {page} of a PDF with {len(document)} page(s)")
        pdf_page = document[page - 1]
        try:
            # rev_byteorder: PDFium writes RGB rather than BGR, so no channel swap is needed.
            return pdf_page.render(scale=dpi / 72, rev_byteorder=True).to_pil().convert("RGB")
        finally:
            pdf_page.close()
    finally:
        document.close()


def write_manifest(root: str | Path, entries: Iterable[PageEntry]) -> Path:
    """Write ``root/manifest.jsonl`` with one canonical line per entry; returns its path."""
    manifest = Path(root) / MANIFEST
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("".join(entry.canonical_line() + "\n" for entry in entries), encoding="utf-8")
    return manifest


def dataset_hash(root: str | Path) -> str:
    """SHA-256 (hex) of the dataset's content: each entry's canonical line and its source's bytes, in manifest order.

    Canonical lines make formatting, key order and omitted defaults irrelevant; mtimes and absolute paths never
    enter, so the same dataset hashes the same on every machine.
    """
    return Dataset.load(root).hash()


def _content_hash(dataset: Dataset) -> str:
    digest = hashlib.sha256(b"dsocr-dataset-v1\n")
    source_digests: dict[str, bytes] = {}  # a PDF's pages share one file: read it once
    for entry in dataset:
        if entry.source not in source_digests:
            source_digests[entry.source] = hashlib.sha256(dataset.source_path(entry).read_bytes()).digest()
        line = entry.canonical_line().encode("utf-8")
        # Length-prefixed, so no two different datasets can concatenate to the same stream.
        digest.update(len(line).to_bytes(8, "big") + line + source_digests[entry.source])
    return digest.hexdigest()


def _parse_line(line: str, where: str) -> PageEntry:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(record).__name__}")
    try:
        return PageEntry.model_validate(record)
    except ValidationError as error:
        raise DatasetError(f"{where}: {_describe(error)}") from None


def _describe(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "missing":
            problems.append(f"missing field {field!r}")
        elif problem["type"] == "extra_forbidden":
            problems.append(f"unknown field {field!r}")
        else:
            message = problem["msg"].removeprefix("Value error, ")
            problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)
