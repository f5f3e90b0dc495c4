"""Many input files through one model: find the inputs, OCR each document, write its outputs.

A file that cannot be processed is recorded and skipped; the run goes on to the next file.
"""

from __future__ import annotations

import glob
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dsocr.contract import OcrOptions, Recognizer
from dsocr.documents.errors import DocumentError
from dsocr.documents.output import DocumentInfo, DocumentWriter, document_markdown, document_record
from dsocr.documents.pipeline import ocr_pages
from dsocr.documents.rendering import RenderPool

#: Files a folder contributes; named files are taken whatever their name, since the type comes from the bytes.
DOCUMENT_SUFFIXES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff"})


@dataclass(frozen=True)
class Failure:
    """An input that produced no output: ``code`` is a DocumentError code, ``not_found`` or ``unreadable``."""

    input: str
    code: str
    message: str


@dataclass(frozen=True)
class DocumentRun:
    path: Path
    record: dict  # as written to <name>.json
    markdown: str
    written: tuple[Path, Path] | None  # the .md and .json paths, when an output directory was given


def find_inputs(arguments: list[str]) -> tuple[list[Path], list[Failure]]:
    """Files named, files in folders (recursively, by suffix) and glob matches, in order, each once."""
    found: dict[Path, None] = {}
    failures = []
    for argument in arguments:
        path = Path(argument)
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES and p.is_file())
            if not matches:
                failures.append(Failure(argument, "not_found", "the folder has no PDF, PNG, JPEG or TIFF files"))
        elif glob.has_magic(argument):
            matches = sorted(Path(p) for p in glob.glob(argument, recursive=True) if Path(p).is_file())
            if not matches:
                failures.append(Failure(argument, "not_found", "no file matches the pattern"))
        else:
            matches = []
            failures.append(Failure(argument, "not_found", "no such file or folder"))
        found.update(dict.fromkeys(matches))
    return list(found), failures


def output_stems(paths: list[Path]) -> list[str]:
    """A distinct output name per input: the file's stem, numbered when it is taken (``x``, ``x-2``, …)."""
    stems: list[str] = []
    for path in paths:
        stem, number = path.stem, 1
        while stem in stems:
            number += 1
            stem = f"{path.stem}-{number}"
        stems.append(stem)
    return stems


def ocr_file(
    recognizer: Recognizer,
    model: dict,
    pool: RenderPool,
    path: Path,
    options: OcrOptions,
    *,
    pages: str | None = None,
    dpi: float,
    out: Path | None = None,
    stem: str | None = None,
    progress: bool | None = None,
    concurrency: int = 1,
) -> DocumentRun:
    """OCR one file; with ``out``, write ``<stem>.md``, ``<stem>.json`` and ``<stem>_images/`` there.

    Raises ``DocumentError`` (nothing written) for a file that cannot be processed at all, and OSError for
    one that cannot be read. ``progress`` None shows a progress bar only on a terminal. ``concurrency``: pages
    recognised at once (see ``ocr_pages``), for a thread-safe recognizer such as a server client.
    """
    started = time.monotonic()
    data = path.read_bytes()
    writer = DocumentWriter(out, stem or path.stem) if out is not None else None
    with pool.open(data, pages, dpi=dpi) as document:
        results = []
        bar = tqdm(
            total=len(document.page_indices),
            desc=path.name,
            unit="page",
            disable=None if progress is None else not progress,
        )
        with bar:
            for page, result in ocr_pages(recognizer, document, options, writer and writer.image_link, concurrency):
                if writer:
                    writer.save_crops(page, result)
                results.append(result)
                bar.update()
    info = DocumentInfo(
        name=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        kind=document.kind,
        page_count=document.page_count,
        page_indices=document.page_indices,
    )
    record = document_record(info, model, options, dpi, results, time.monotonic() - started).model_dump(mode="json")
    markdown = document_markdown(results)
    return DocumentRun(path, record, markdown, writer.finish(record, markdown) if writer else None)


def describe_failure(error: Exception, argument: str) -> Failure:
    if isinstance(error, DocumentError):
        return Failure(argument, error.code, str(error))
    return Failure(argument, "unreadable", str(error))
