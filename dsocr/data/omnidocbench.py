"""Import OmniDocBench pages (its JSON annotation file and its page images) as a dataset.

OmniDocBench's file is a JSON list of pages, each with ``page_info`` (``image_path``, ``page_attribute``, ...) and
``layout_dets``: blocks with a ``category_type``, a ``poly`` (corner points in image pixels), ``ignore``, a reading
``order`` and their ``text``, ``latex`` or ``html``.

The ground truth of a page is DeepSeek-OCR's Markdown of the blocks that carry the page's text, in reading order:

* left out: any block with ``ignore: true``; headers, footers, page numbers, page footnotes and ``abandon``
  (OmniDocBench's end-to-end score does not count them); the masks (``text_mask`` ...); and span categories
  (``equation_inline``, ``text_span`` ...), whose text the block around them already holds;
* ``title`` → ``# text`` on one line (a Markdown heading cannot span lines);
* ``text_block``, ``reference``, code, and the captions and footnotes of figures, tables and equations → the text;
* ``equation_isolated`` → ``\\[ latex \\]``, from ``latex`` less any ``$$``, ``\\[ \\]`` or ``$`` it came wrapped in;
* ``table`` → its ``html``, else its ``latex``;
* ``figure`` → nothing (it is kept as a block, with no text);

joined by a blank line. Blocks are read by ``order``; those without one (it is missing for some categories) come
after, top to bottom, then left to right. A category this module does not know is an error rather than a guess:
silently dropping or keeping text would make wrong ground truth.

Each page becomes one entry: its image copied byte for byte into ``images/`` under its own file name, its kept
blocks (category, the bounding box of their poly, text) and as tags the flat values of ``page_attribute`` with
``"source": "omnidocbench"``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath

from dsocr.data.dataset import Block, DatasetError, PageEntry, TagValue, write_manifest

#: Left out of the ground truth and of the blocks (see the module docstring for why).
LEFT_OUT = frozenset(
    {
        "header",
        "footer",
        "page_number",
        "page_footnote",
        "abandon",
        "text_mask",
        "figure_mask",
        "table_mask",
        "equation_semantic",
        "equation_inline",
        "equation_ignore",
        "text_span",
        "footnote_mark",
    }
)
#: Categories whose ``text`` is read as it is.
TEXT = frozenset(
    {
        "text_block",
        "reference",
        "code_txt",
        "code_txt_caption",
        "code_algorithm",
        "code_algorithm_caption",
        "figure_caption",
        "figure_footnote",
        "table_caption",
        "table_footnote",
        "equation_caption",
    }
)
KEPT = TEXT | {"title", "equation_isolated", "table", "figure"}


def import_omnidocbench(annotations: str | Path, images_dir: str | Path, out: str | Path) -> list[PageEntry]:
    """Write the pages of OmniDocBench's JSON file ``annotations`` as a dataset in ``out``; returns its entries.

    Every page is checked (its image found, no two images of the same name) before anything is written, so a bad
    file leaves ``out`` as it was.
    """
    annotations, images_dir, out = Path(annotations), Path(images_dir), Path(out)
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: no such folder (the folder of OmniDocBench's page images)")
    copies: dict[str, Path] = {}
    entries = []
    for index, page in enumerate(_read_pages(annotations)):
        where = f"{annotations}: page index {index}"
        name = _image_name(page, where)
        image = images_dir / name
        if not image.is_file():
            raise DatasetError(f"{where}: image {name!r} not found in {images_dir}")
        if name in copies:
            raise DatasetError(f"{where}: a second page with the image {name!r}; image names must be unique")
        copies[name] = image
        entries.append(_page_entry(page, f"images/{name}", where))
    (out / "images").mkdir(parents=True, exist_ok=True)
    for name, image in copies.items():
        shutil.copyfile(image, out / "images" / name)
    write_manifest(out, entries)
    return entries


def _page_entry(page: dict, source: str, where: str) -> PageEntry:
    """One OmniDocBench page (its page_info checked) as an entry whose image is at ``source``."""
    blocks = page.get("layout_dets", [])
    if not isinstance(blocks, list):
        raise DatasetError(f"{where}: layout_dets is {type(blocks).__name__}, not a list of blocks")
    kept = []
    for number, block in enumerate(blocks):
        block_where = f"{where}, block {number}"
        if not isinstance(block, dict):
            raise DatasetError(f"{block_where}: expected an object, got {type(block).__name__}")
        category = block.get("category_type")
        if not isinstance(category, str) or category not in KEPT | LEFT_OUT:
            raise DatasetError(f"{block_where}: unknown category_type {category!r}")
        if category in KEPT and not block.get("ignore"):
            kept.append((block, _bbox(block.get("poly"), block_where)))
    kept.sort(key=_reading_position)
    read = [(block["category_type"], bbox, _content(block)) for block, bbox in kept]
    markdown = [_markdown(category, text) for category, _, text in read]
    return PageEntry(
        source=source,
        page=1,
        ground_truth="\n\n".join(piece for piece in markdown if piece),
        blocks=[Block(category=category, bbox=bbox, text=text) for category, bbox, text in read],
        tags=_tags(page["page_info"].get("page_attribute"), where),
    )


def _read_pages(annotations: Path) -> list[dict]:
    try:
        pages = json.loads(annotations.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{annotations}: no such file") from None
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{annotations}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    if not isinstance(pages, list):
        raise DatasetError(f"{annotations}: expected a JSON list of pages, got {type(pages).__name__}")
    if not pages:
        raise DatasetError(f"{annotations}: the file lists no pages")
    for index, page in enumerate(pages):
        if not isinstance(page, dict):
            raise DatasetError(f"{annotations}: page index {index}: expected an object, got {type(page).__name__}")
    return pages


def _image_name(page: dict, where: str) -> str:
    info = page.get("page_info")
    path = info.get("image_path") if isinstance(info, dict) else None
    if not isinstance(path, str) or not path:
        raise DatasetError(f"{where}: no page_info.image_path (the page's image file name)")
    # Only the file name is used: the images are all in one folder, and a path could not climb out of it.
    name = PureWindowsPath(PurePosixPath(path).name).name
    if name in ("", ".", ".."):
        raise DatasetError(f"{where}: page_info.image_path {path!r} names no file")
    return name


def _bbox(poly: object, where: str) -> tuple[float, float, float, float]:
    numbers = poly if isinstance(poly, list) else []
    if len(numbers) < 4 or len(numbers) % 2 or not all(_is_number(n) for n in numbers):
        raise DatasetError(f"{where}: poly {poly!r} is not a list of x, y corner coordinates")
    xs, ys = numbers[0::2], numbers[1::2]
    return (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reading_position(kept: tuple[dict, tuple[float, float, float, float]]) -> tuple:
    block, (left, top, _, _) = kept
    order = block.get("order")
    return (0, order, top, left) if _is_number(order) else (1, 0, top, left)


def _content(block: dict) -> str:
    """The block's text: its ``text``, its LaTeX without delimiters, or its table HTML (else LaTeX)."""
    category = block["category_type"]
    if category == "figure":
        return ""
    if category == "table":
        return _string(block.get("html")) or _string(block.get("latex"))
    if category == "equation_isolated":
        return _unwrap_latex(_string(block.get("latex")))
    return _string(block.get("text"))


def _string(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _unwrap_latex(latex: str) -> str:
    for opening, closing in (("$$", "$$"), ("\\[", "\\]"), ("$", "$")):
        if len(latex) >= len(opening) + len(closing) and latex.startswith(opening) and latex.endswith(closing):
            return latex[len(opening) : len(latex) - len(closing)].strip()
    return latex


def _markdown(category: str, text: str) -> str:
    if not text:
        return ""
    if category == "title":
        return "# " + " ".join(text.split())
    if category == "equation_isolated":
        return f"\\[ {text} \\]"
    return text


def _tags(attributes: object, where: str) -> dict[str, TagValue]:
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise DatasetError(f"{where}: page_info.page_attribute is {type(attributes).__name__}, not an object")
    # A manifest tag is a flat value, so lists, objects and nulls are not carried over.
    tags = {str(key): value for key, value in attributes.items() if isinstance(value, str | int | float)}
    return tags | {"source": "omnidocbench"}
