"""Raw generated text → layout blocks and clean Markdown, following the official post-processing.

Generation can stop at the token limit or degenerate anywhere, even inside a grounding tag, so parsing never
raises on the text: it keeps what it can read, removes dangling tag fragments from the Markdown, and says
what was wrong.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from dsocr.tokens import DET_CLOSE, DET_OPEN, EOS, REF_CLOSE, REF_OPEN

Box = tuple[int, int, int, int]

#: Coordinates come in 1000 bins; the official scripts divide by 999 to map them onto the image.
MAX_BIN = 999
#: The one label whose region the official scripts crop and link from the Markdown.
IMAGE_LABEL = "image"
#: The official scripts' LaTeX rewrites: Markdown renderers rarely know the mathtools colon macros.
LATEX_REPLACEMENTS = (("\\coloneqq", ":="), ("\\eqqcolon", "=:"))

_TAG = re.compile("|".join(re.escape(tag) for tag in (REF_OPEN, REF_CLOSE, DET_OPEN, DET_CLOSE)))
# Labels and box lists sit on the tag line, so a field that reaches a newline or another tag was never closed.
_FIELD_END = re.compile(f"{_TAG.pattern}|\n")
_BLANK_LINES = re.compile(r"\n{3,}")
_EXCERPT_CHARS = 60


@dataclass(frozen=True)
class Block:
    label: str
    boxes: list[Box]  # as emitted, clamped to 0..999; empty when the box list was missing or unreadable
    boxes_px: list[Box]  # the same boxes in pixels of the original image
    text: str  # content after the tag up to the next tag, cleaned as in the Markdown
    image_index: int | None = None  # k given to image_link; only image blocks with a box get one


@dataclass
class ParsedPage:
    blocks: list[Block]
    markdown: str
    malformed: bool  # a tag was truncated or unclosed, or a box list could not be read
    problems: list[str]  # why, one line per defect


@dataclass(frozen=True)
class _Tag:
    """A span of the raw text that the Markdown drops; ``label`` is None when it opens no block."""

    start: int
    end: int
    label: str | None
    boxes: list[Box]


def parse_page(
    raw: str, image_size: tuple[int, int], image_link: Callable[[int], str] = lambda k: f"images/{k}.jpg"
) -> ParsedPage:
    """Split one page's generated text into blocks and Markdown.

    ``image_size`` is the (width, height) of the original image, which the boxes refer to. Each ``image``
    block becomes a link ``image_link(k)``, k counting those blocks from 0. Text without grounding tags
    (the ``free`` prompt) passes through with no blocks.
    """
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    text = _strip_eos(raw)
    tags, problems = _find_tags(text)
    blocks: list[Block] = []
    pieces: list[str] = []
    cursor = images = 0
    content_ends = [tag.start for tag in tags[1:]] + [len(text)]
    for tag, content_end in zip(tags, content_ends):
        pieces.append(text[cursor : tag.start])
        cursor = tag.end
        if tag.label is None:
            continue
        image_index = None
        if tag.label == IMAGE_LABEL and tag.boxes:
            image_index, images = images, images + 1
            pieces.append(f"![]({image_link(image_index)})\n")
        boxes_px = [to_pixels(box, width, height) for box in tag.boxes]
        blocks.append(Block(tag.label, tag.boxes, boxes_px, _clean(text[tag.end : content_end]), image_index))
    pieces.append(text[cursor:])
    return ParsedPage(blocks, _clean("".join(pieces)), bool(problems), problems)


def to_pixels(box: Box, width: int, height: int) -> Box:
    """Bins → pixels exactly as the official scripts compute it, so crops match theirs."""
    x1, y1, x2, y2 = box
    return (
        int(x1 / MAX_BIN * width),
        int(y1 / MAX_BIN * height),
        int(x2 / MAX_BIN * width),
        int(y2 / MAX_BIN * height),
    )


def _strip_eos(raw: str) -> str:
    """Drop a trailing EOS; leading text stays untouched so problem offsets index ``raw``."""
    text = raw.rstrip()
    return text[: -len(EOS)] if text.endswith(EOS) else text


def _clean(text: str) -> str:
    for latex, plain in LATEX_REPLACEMENTS:
        text = text.replace(latex, plain)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _find_tags(text: str) -> tuple[list[_Tag], list[str]]:
    tags: list[_Tag] = []
    problems: list[str] = []
    position = 0
    while match := _TAG.search(text, position):
        start = match.start()
        if match.group() == REF_OPEN:
            tag = _read_grounding(text, start, problems)
        elif match.group() == DET_OPEN:
            _, end, _ = _read_field(text, start + len(DET_OPEN), DET_CLOSE)
            problems.append(f"{DET_OPEN} without a {REF_OPEN} label at offset {start}: {_excerpt(text[start:end])}")
            tag = _Tag(start, end, None, [])
        else:
            problems.append(f"stray {match.group()} at offset {start}")
            tag = _Tag(start, match.end(), None, [])
        tags.append(tag)
        position = tag.end
    return tags, problems


def _read_grounding(text: str, start: int, problems: list[str]) -> _Tag:
    """Read ``<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], …]<|/det|>`` from ``start``, as far as it goes.

    A label that was never closed opens no block, since the label may be cut short. A closed label opens a
    block even without readable boxes, so the content after it is not credited to the block before.
    """
    label, end, closed = _read_field(text, start + len(REF_OPEN), REF_CLOSE)
    if not closed:
        problems.append(f"unclosed {REF_OPEN} at offset {start}: {_excerpt(text[start:end])}")
        return _Tag(start, end, None, [])
    if not text.startswith(DET_OPEN, end):
        problems.append(f"label {label!r} at offset {start} has no {DET_OPEN} box list")
        return _Tag(start, end, label, [])
    payload, end, closed = _read_field(text, end + len(DET_OPEN), DET_CLOSE)
    if not closed:
        problems.append(f"unclosed {DET_OPEN} of label {label!r} at offset {start}: {_excerpt(text[start:end])}")
        return _Tag(start, end, label, [])
    boxes, box_problems = _parse_boxes(payload)
    problems.extend(f"label {label!r} at offset {start}: {problem}" for problem in box_problems)
    return _Tag(start, end, label, boxes)


def _read_field(text: str, start: int, close: str) -> tuple[str, int, bool]:
    """(value, end of the span, whether ``close`` ended it); an unclosed field ends before a newline or tag."""
    match = _FIELD_END.search(text, start)
    stop = match.start() if match else len(text)
    if text.startswith(close, stop):
        return text[start:stop], stop + len(close), True
    return text[start:stop], stop, False


def _parse_boxes(payload: str) -> tuple[list[Box], list[str]]:
    """The boxes of a det payload, read as a Python literal (never evaluated), with what was rejected.

    Coordinates are rounded and clamped to 0..999; entries that are not four real numbers are dropped.
    """
    try:
        value = ast.literal_eval(payload.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return [], [f"unreadable box list {_excerpt(payload)}"]
    if not isinstance(value, list | tuple) or not value:
        return [], [f"box list is not a non-empty list: {_excerpt(payload)}"]
    boxes: list[Box] = []
    problems: list[str] = []
    for item in value:
        if _is_box(item):
            x1, y1, x2, y2 = (min(max(round(v), 0), MAX_BIN) for v in item)
            boxes.append((x1, y1, x2, y2))
        else:
            problems.append(f"not a box of four numbers: {_excerpt(repr(item))}")
    return boxes, problems


def _is_box(item: object) -> bool:
    return (
        isinstance(item, list | tuple)
        and len(item) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in item)
    )


def _excerpt(text: str) -> str:
    return repr(text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…")
