"""Deterministic synthetic pages with exact ground truth: text drawn with installed TrueType fonts.

Every page draws from its own ``random.Random`` seeded by ``(seed, index)``, so page 7 of a run is the same page
whatever the page count, and the same seed with the same fonts gives byte-identical files (PNG and PDF are
written without timestamps) and so the same ``dataset_hash``.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from dsocr.data.dataset import DEFAULT_DPI, Block, PageEntry, write_manifest

#: Where Linux distributions and users install fonts.
FONT_DIRS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local" / "share" / "fonts",
    Path.home() / ".fonts",
)
#: Family → (regular, bold) TrueType file names, as the distributions' packages name them.
FONT_FILES: dict[str, tuple[str, str]] = {
    "DejaVu Sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "DejaVu Serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    "Liberation Sans": ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    "Liberation Serif": ("LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf"),
    "FreeSans": ("FreeSans.ttf", "FreeSansBold.ttf"),
    "FreeSerif": ("FreeSerif.ttf", "FreeSerifBold.ttf"),
    "Noto Sans": ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
    "Noto Serif": ("NotoSerif-Regular.ttf", "NotoSerif-Bold.ttf"),
}
_READER_FAMILIES = ("DejaVu Sans", "DejaVu Serif", "Liberation Sans", "Liberation Serif")
_PRINT_FAMILIES = tuple(FONT_FILES)

#: A4 at DeepSeek's rendering resolution: a PDF page of this many pixels at DEFAULT_DPI renders back to the same
#: pixel grid, so the block boxes of ``pdf`` pages hold for ``Dataset.open_page`` at its default dpi.
A4_PX = (round(210 / 25.4 * DEFAULT_DPI), round(297 / 25.4 * DEFAULT_DPI))  # (1191, 1684)

#: Applied in this order, and so named in this order in a page's ``degradations`` tag.
DEGRADATIONS = ("blur", "noise", "jpeg", "rotate", "contrast")

# About 200 common short English words (3-7 letters, every letter of the alphabet among them): the vocabulary of
# every preset, small enough for a tiny reader model to learn.
WORDS = tuple(
    """
    able just jump above add again ago all always and answer apple arm away back ball base beat before best big black boat
    book box bring build buy came car carry cat center city clean close color common corner count cross cut day
    did door draw dress drive each earth easy egg enough ever eye fact family farm father feel field find fire
    fish floor follow foot forest four fresh front full garden get give gold grass green group half happy has
    have hear heavy her high his home horse hour how inch island keep king lake large late lead leave less light
    line little long low main man map may milk minute moon most move music name need new night note number off
    old one open other out page park pass pick place plant point power pull put quiet reach ready rest ride
    river rock round safe sail sand say sea second seed send set shape ship short side simple sit size sleep
    small soft song sound space speed spring star stay still stop street study sure tail talk teach tell test
    that their then these think three today too top town true turn under upon very wait wall warm watch wave
    wear well west wheel where while whole wide will window wish woman wood work write yellow yet your
    """.split()
)


class FontsMissing(ValueError):
    """None of a preset's font families is installed."""


@dataclass(frozen=True)
class FontFamily:
    name: str
    regular: Path
    bold: Path | None

    def font(self, size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
        return _load_font(str(self.bold if bold and self.bold else self.regular), size)


@dataclass
class SynthPage:
    """One drawn page: its pixels and the exact text on it."""

    image: Image.Image
    ground_truth: str
    blocks: list[Block]
    tags: dict[str, str | int | float | bool] = field(default_factory=dict)


PageMaker = Callable[[random.Random, list[FontFamily]], SynthPage]


@dataclass(frozen=True)
class Preset:
    families: tuple[str, ...]
    make_page: PageMaker
    pdf: bool = False


def installed_families(families: tuple[str, ...] | None = None) -> list[FontFamily]:
    """The families (all known ones by default) whose regular file is installed, in the order asked for."""
    found = _font_files()
    installed = []
    for name in families or tuple(FONT_FILES):
        regular, bold = FONT_FILES[name]
        if regular in found:
            installed.append(FontFamily(name, found[regular], found.get(bold)))
    return installed


@cache
def _font_files() -> dict[str, Path]:
    """File name → path of every TrueType file in FONT_DIRS; the first in sorted order wins a duplicate name."""
    files: dict[str, Path] = {}
    for folder in FONT_DIRS:
        if folder.is_dir():
            for path in sorted(folder.rglob("*.ttf")):
                files.setdefault(path.name, path)
    return files


@cache
def _load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def synthesize(out_dir: str | Path, pages: int, seed: int, preset: str = "reader", degrade: float = 0.0) -> Path:
    """Write ``pages`` synthetic pages and their ``manifest.jsonl`` into ``out_dir``; returns ``out_dir``.

    Images go to ``out_dir/images/`` as PNG; the ``pdf`` preset writes PDFs of 2-3 pages there instead, one
    manifest row per page. Each degradation is applied to a page with probability ``degrade``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if pages < 1:
        raise ValueError(f"pages must be at least 1, got {pages}")
    if not 0.0 <= degrade <= 1.0:
        raise ValueError(f"degrade is a probability, 0 to 1; got {degrade}")
    chosen = PRESETS[preset]
    fonts = installed_families(chosen.families)
    if not fonts:
        raise FontsMissing(
            f"preset {preset!r} needs one of the fonts {', '.join(chosen.families)}; none is installed in "
            f"{', '.join(str(folder) for folder in FONT_DIRS)} (e.g. apt-get install fonts-dejavu-core)"
        )
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    common_tags = {"preset": preset, "seed": seed}
    entries: list[PageEntry] = []
    if chosen.pdf:
        file_index = 0
        while len(entries) < pages:
            rng = _rng(seed, f"file{file_index}")
            count = min(rng.randint(2, 3), pages - len(entries))
            drawn = [_draw(chosen, _rng(seed, f"file{file_index}:page{page}"), fonts, degrade) for page in range(count)]
            name = f"images/{file_index:05d}.pdf"
            _save_pdf([page.image for page in drawn], out / name)
            for number, page in enumerate(drawn, start=1):
                entries.append(_entry(name, number, page, common_tags))
            file_index += 1
    else:
        for index in range(pages):
            page = _draw(chosen, _rng(seed, f"page{index}"), fonts, degrade)
            name = f"images/{index:05d}.png"
            page.image.save(out / name, format="PNG")  # Pillow writes no tIME chunk: the bytes depend on pixels only
            entries.append(_entry(name, 1, page, common_tags))
    write_manifest(out, entries)
    return out


def _rng(seed: int, key: str) -> random.Random:
    # A string seed goes through SHA-512 (random's version 2 seeding): stable across runs and PYTHONHASHSEED.
    return random.Random(f"dsocr-synth:{seed}:{key}")


def _draw(preset: Preset, rng: random.Random, fonts: list[FontFamily], degrade: float) -> SynthPage:
    page = preset.make_page(rng, fonts)
    applied = _degrade(page, rng, degrade)
    page.tags["degradations"] = ",".join(applied)
    return page


def _entry(source: str, number: int, page: SynthPage, common_tags: dict) -> PageEntry:
    return PageEntry(
        source=source, page=number, ground_truth=page.ground_truth, blocks=page.blocks, tags=common_tags | page.tags
    )


def _save_pdf(images: list[Image.Image], path: Path) -> None:
    first, *rest = images
    # Pillow stamps CreationDate and ModDate with the current time unless they are given; None leaves them out.
    # RGB pages are stored as JPEG (DCTDecode) in Pillow's PDFs; a high quality keeps glyph edges clean.
    first.save(
        path,
        format="PDF",
        save_all=True,
        append_images=rest,
        resolution=float(DEFAULT_DPI),
        quality=95,
        creationDate=None,
        modDate=None,
    )


# Pages ----------------------------------------------------------------------------------------------------------


def _reader_page(rng: random.Random, fonts: list[FontFamily]) -> SynthPage:
    """512×512, 1-2 lines of 1-3 large lowercase words: what a tiny reader model learns first."""
    width = height = 512
    family = rng.choice(fonts)
    size = rng.randint(44, 64)
    font = family.font(size)
    background, ink = _paper_and_ink(rng)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    left, top = rng.randint(16, 48), rng.randint(16, 64)
    lines = [
        _fit_words(rng, font, rng.randint(1, 3), width - left - 16, _lowercase_word) for _ in range(rng.randint(1, 2))
    ]
    leading = round(size * rng.uniform(1.2, 1.5))
    blocks = [_draw_line(draw, (left, top + leading * row), line, font, ink) for row, line in enumerate(lines)]
    return SynthPage(image, "\n".join(lines), blocks, {"font": family.regular.name, "size": size})


def _lines_page(rng: random.Random, fonts: list[FontFamily]) -> SynthPage:
    """768×1024, 3-8 lines of mixed-case words and numbers at a medium size."""
    width, height = 768, 1024
    family = rng.choice(fonts)
    size = rng.randint(24, 40)
    font = family.font(size)
    background, ink = _paper_and_ink(rng)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    left, top = rng.randint(32, 80), rng.randint(32, 96)
    leading = round(size * rng.uniform(1.3, 1.8))
    lines = [
        _fit_words(rng, font, rng.randint(2, 8), width - left - 32, _mixed_token) for _ in range(rng.randint(3, 8))
    ]
    blocks = [_draw_line(draw, (left, top + leading * row), line, font, ink) for row, line in enumerate(lines)]
    return SynthPage(image, "\n".join(lines), blocks, {"font": family.regular.name, "size": size})


def _document_page(rng: random.Random, fonts: list[FontFamily]) -> SynthPage:
    """An A4 page: a bold title, 1-3 wrapped paragraphs and sometimes a grid table, in DeepSeek-OCR's Markdown."""
    width, height = A4_PX
    family = rng.choice(fonts)
    size = rng.randint(24, 30)
    font, title_font = family.font(size), family.font(rng.randint(52, 68), bold=True)
    background, ink = _paper_and_ink(rng)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    margin = rng.randint(80, 120)
    text_width, bottom = width - 2 * margin, height - margin
    leading = round(size * rng.uniform(1.35, 1.6))

    title = " ".join(_lowercase_word(rng).capitalize() for _ in range(rng.randint(2, 5)))
    title_box = _draw_line(draw, (margin, margin), title, title_font, ink)
    blocks = [Block(category="title", bbox=title_box.bbox, text=title)]
    markdown = [f"# {title}"]
    y = round(title_box.bbox[3]) + 2 * size

    paragraphs = rng.randint(1, 3)
    table_after = rng.randint(0, paragraphs - 1) if rng.random() < 0.5 else None
    for index in range(paragraphs):
        text = " ".join(_sentence(rng) for _ in range(rng.randint(3, 8)))
        wrapped = _wrap(text, font, text_width)
        if y + leading * len(wrapped) > bottom:
            break
        boxes = [
            _draw_line(draw, (margin, y + leading * row), line, font, ink).bbox for row, line in enumerate(wrapped)
        ]
        # Wrapping only breaks at spaces, so the paragraph's text is its lines joined by spaces: the source text.
        blocks.append(Block(category="text", bbox=_union(boxes), text=text))
        markdown.append(text)
        y += leading * len(wrapped) + size
        if index == table_after:
            table = _table(rng, draw, font, ink, (margin, y), text_width, bottom)
            if table is not None:
                blocks.append(table)
                markdown.append(table.text)
                y = round(table.bbox[3]) + 2 * size
    return SynthPage(image, "\n\n".join(markdown), blocks, {"font": family.regular.name, "size": size})


def _table(
    rng: random.Random,
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont,
    ink: tuple[int, int, int],
    origin: tuple[int, int],
    max_width: int,
    bottom: int,
) -> Block | None:
    """A grid of short cells; None when it does not fit in the space left."""
    rows, columns = rng.randint(2, 4), rng.randint(2, 4)
    cells = [[_cell(rng) for _ in range(columns)] for _ in range(rows)]
    padding = font.size // 2
    column_widths = [max(_text_width(font, row[c]) for row in cells) + 2 * padding for c in range(columns)]
    row_height = round(font.size * 1.2) + 2 * padding
    x0, y0 = origin
    x1, y1 = x0 + sum(column_widths), y0 + rows * row_height
    if x1 - x0 > max_width or y1 > bottom:
        return None
    xs = [x0 + sum(column_widths[:c]) for c in range(columns + 1)]
    for x in xs:
        draw.line([(x, y0), (x, y1)], fill=ink, width=2)
    for r in range(rows + 1):
        draw.line([(x0, y0 + r * row_height), (x1, y0 + r * row_height)], fill=ink, width=2)
    for r, row in enumerate(cells):
        for c, text in enumerate(row):
            draw.text((xs[c] + padding, y0 + r * row_height + padding), text, font=font, fill=ink)
    html = "<table>" + "".join("<tr>" + "".join(f"<td>{t}</td>" for t in row) + "</tr>" for row in cells) + "</table>"
    return Block(category="table", bbox=(x0, y0, x1 + 1, y1 + 1), text=html)


# Text -----------------------------------------------------------------------------------------------------------


def _lowercase_word(rng: random.Random) -> str:
    return rng.choice(WORDS)


def _mixed_token(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.2:
        return str(rng.randint(0, 9999))
    word = rng.choice(WORDS)
    if roll < 0.45:
        return word.capitalize()
    if roll < 0.5:
        return word.upper()
    return word


def _cell(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return str(rng.randint(1, 999)) if rng.random() < 0.6 else f"{rng.randint(0, 99)}.{rng.randint(0, 9)}"
    return _mixed_token(rng)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(5, 12))]
    return " ".join([words[0].capitalize(), *words[1:]]) + "."


def _fit_words(
    rng: random.Random, font: ImageFont.FreeTypeFont, count: int, max_width: int, token: Callable[[random.Random], str]
) -> str:
    """``count`` tokens joined by spaces, less the last ones that would run past ``max_width`` (one at least)."""
    words = [token(rng) for _ in range(count)]
    while len(words) > 1 and _text_width(font, " ".join(words)) > max_width:
        words.pop()
    return " ".join(words)


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and _text_width(font, f"{lines[-1]} {word}") <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _text_width(font: ImageFont.FreeTypeFont, text: str) -> int:
    x0, _, x1, _ = font.getbbox(text)
    return math.ceil(x1 - x0)


# Drawing --------------------------------------------------------------------------------------------------------


def _paper_and_ink(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    paper = rng.randint(238, 255)
    tint = [min(255, paper + rng.randint(-4, 4)) for _ in range(3)]
    darkness = rng.randint(0, 60)
    return (tint[0], tint[1], tint[2]), (darkness, darkness, darkness)


def _draw_line(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    text: str,
    font: ImageFont.FreeTypeFont,
    ink: tuple[int, int, int],
) -> Block:
    """Draw ``text`` with its top-left at ``origin``; a ``text`` block with the ink's bounding box."""
    draw.text(origin, text, font=font, fill=ink)
    box = draw.textbbox(origin, text, font=font)
    return Block(category="text", bbox=box, text=text)


def _union(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


# Degradations ---------------------------------------------------------------------------------------------------


def _degrade(page: SynthPage, rng: random.Random, probability: float) -> list[str]:
    """Apply each degradation with ``probability``, in the order of DEGRADATIONS; returns the names applied."""
    if probability <= 0:
        return []
    # All the rolls come first, so which degradations a page gets does not depend on their parameters' draws.
    chosen = [name for name in DEGRADATIONS if rng.random() < probability]
    noise_rng = np.random.default_rng(rng.getrandbits(128))
    image = page.image
    paper = image.getpixel((0, 0))  # before noise: the margins are paper
    for name in chosen:
        if name == "blur":
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.4)))
        elif name == "noise":
            pixels = np.asarray(image, dtype=np.float32)
            # One value per pixel for all three channels: grey grain like a scanner's, at a third of the cost.
            grain = noise_rng.standard_normal(size=(*pixels.shape[:2], 1), dtype=np.float32)
            pixels = pixels + grain * np.float32(rng.uniform(4.0, 12.0))
            image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
        elif name == "jpeg":
            # Re-encoded for the artefacts, then stored as PNG like every other page.
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=rng.randint(25, 60))
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        elif name == "rotate":
            angle = rng.uniform(-2.0, 2.0)
            # The corners it uncovers take the paper's colour (white or near-white), not a frame of pure white.
            image = image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=paper)
            page.blocks = [_rotated(block, angle, image.size) for block in page.blocks]
        elif name == "contrast":
            image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.35, 0.65))
    page.image = image
    return chosen


def _rotated(block: Block, degrees: float, size: tuple[int, int]) -> Block:
    """``block`` with its box turned as ``Image.rotate`` turns the page (counter-clockwise about the centre)."""
    cx, cy = size[0] / 2, size[1] / 2
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    x0, y0, x1, y1 = block.bbox
    # y runs down in image coordinates, so a counter-clockwise turn on screen is x' = c·dx + s·dy, y' = -s·dx + c·dy.
    corners = [
        (cx + cos * (x - cx) + sin * (y - cy), cy - sin * (x - cx) + cos * (y - cy)) for x in (x0, x1) for y in (y0, y1)
    ]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    box = (
        max(0.0, round(min(xs), 1)),
        max(0.0, round(min(ys), 1)),
        min(float(size[0]), round(max(xs), 1)),
        min(float(size[1]), round(max(ys), 1)),
    )
    return block.model_copy(update={"bbox": box})


PRESETS: dict[str, Preset] = {
    "reader": Preset(_READER_FAMILIES, _reader_page),
    "lines": Preset(_PRINT_FAMILIES, _lines_page),
    "document": Preset(_PRINT_FAMILIES, _document_page),
    "pdf": Preset(_PRINT_FAMILIES, _document_page, pdf=True),
}
