"""Import born-digital PDFs as a dataset whose ground truth is each page's text layer: pseudo ground truth.

The text PDFium extracts is what the PDF says is on the page, not what a reader sees (no Markdown, no reading order
beyond the content stream's, no text of images), so every entry is tagged ``"ground_truth": "text-layer"`` for
training and evaluation to tell it from real annotations. A page without text (a scan) has nothing to learn from
and is skipped; a PDF that cannot be read (encrypted, corrupt) is skipped and the others imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium

from dsocr.data.dataset import DatasetError, PageEntry, write_manifest

TAGS = {"ground_truth": "text-layer", "source": "pdf"}


@dataclass(frozen=True)
class PdfImport:
    """What an import did: pages written, PDFs they came from, pages without text and PDFs that were skipped."""

    out: Path
    pages: int
    pdfs: int
    pages_without_text: int
    unreadable_pdfs: int


def import_pdfs(inputs: Iterable[str | Path], out: str | Path, warn: Callable[[str], None] | None = None) -> PdfImport:
    """Write one entry per page with text of the PDFs in ``inputs`` (files, or folders searched for ``*.pdf``).

    Each PDF with such a page is copied into ``out/pdfs/`` under its own name (``-2``, ``-3`` ... added where two
    share one). Skipped pages and PDFs are reported through ``warn`` (stderr by default). Raises ``DatasetError``,
    writing nothing, when an input does not exist or no page at all has text.
    """
    warn = warn or _warn_on_stderr
    out = Path(out)
    pdfs = _find_pdfs([Path(path) for path in inputs])
    entries: list[PageEntry] = []
    names: set[str] = set()
    without_text = unreadable = copied = 0
    for pdf in pdfs:
        data = pdf.read_bytes()
        try:
            texts = page_texts(data)
        except pdfium.PdfiumError as error:
            warn(f"{pdf}: skipped, not a readable PDF ({error})")
            unreadable += 1
            continue
        if not texts:
            warn(f"{pdf}: skipped, it has no pages")
            unreadable += 1
            continue
        numbers = [number for number, text in enumerate(texts, start=1) if text]
        for number, text in enumerate(texts, start=1):
            if not text:
                warn(f"{pdf}: page {number} skipped, it has no text layer (a scan?)")
                without_text += 1
        if not numbers:
            continue
        source = f"pdfs/{_unique_name(pdf.name, names)}"
        (out / "pdfs").mkdir(parents=True, exist_ok=True)
        (out / source).write_bytes(data)
        copied += 1
        entries.extend(
            PageEntry(source=source, page=number, ground_truth=texts[number - 1], tags=TAGS) for number in numbers
        )
    if not entries:
        raise DatasetError(
            f"no page was imported: none of the {len(pdfs)} PDF(s) has a readable page with a text layer"
        )
    write_manifest(out, entries)
    return PdfImport(out, len(entries), copied, without_text, unreadable)


def page_texts(data: bytes) -> list[str]:
    """The normalised text layer of each page of the PDF ``data`` ("" for a page without text)."""
    document = pdfium.PdfDocument(data)
    try:
        texts = []
        for page in document:
            textpage = page.get_textpage()
            try:
                # get_text_bounded, unlike get_text_range, is not limited to UCS-2.
                texts.append(normalise(textpage.get_text_bounded()))
            finally:
                textpage.close()
                page.close()
        return texts
    finally:
        document.close()


def normalise(text: str) -> str:
    """LF line ends, no form feeds, no trailing spaces on a line, no blank lines around the page's text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _find_pdfs(inputs: list[Path]) -> list[Path]:
    """The files given and the ``*.pdf`` under the folders given, each folder's in sorted order (stable hashes)."""
    pdfs = []
    for path in inputs:
        if path.is_dir():
            pdfs.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf"))
        elif path.is_file():
            pdfs.append(path)
        else:
            raise DatasetError(f"{path}: no such file or folder")
    if not pdfs:
        raise DatasetError(f"no PDF found in {', '.join(str(path) for path in inputs)}")
    return pdfs


def _unique_name(name: str, taken: set[str]) -> str:
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, count = name, 1
    while candidate in taken:
        count += 1
        candidate = f"{stem}-{count}{suffix}"
    taken.add(candidate)
    return candidate


def _warn_on_stderr(message: str) -> None:
    print(f"dsocr: warning: {message}", file=sys.stderr)
