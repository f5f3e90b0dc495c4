"""Synthetic pages with exact ground truth, deterministic for a seed and the installed fonts.

``reader`` (the default) is the tiny reader's training distribution: one or two lines of large lowercase words
on a 512 × 512 page, what DeepSeek-OCR's Tiny mode sees. ``lines`` is a taller page of more, smaller, mixed text.
Degradations (blur, noise, JPEG, rotation, low contrast) are applied with probability ``degrade`` and named in
the page's tags.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from dsocr.data.dataset import PageEntry, write_manifest

FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
WORDS = (
    "able acid aged also area army away baby back ball band bank base bath bear beat bell belt best bird blow blue "
    "boat body bone book boot born both bowl burn busy cake call calm camp card care case cash cast cell chip city "
    "club coal coat code cold come cook cool copy corn cost crew crop dark data date dawn days dead deal dear deep "
    "desk dish door down draw drop drug dust duty each earn east easy edge else even ever face fact fair fall farm "
    "fast fear feel fill film find fine fire firm fish five flat flow food foot form four free from fuel full fund "
    "gain game gate gift girl give glad goal gold golf good gray grow hair half hall hand hard head hear heat help "
    "here hero high hill hold hole home hope host hour huge idea inch into iron item join jump just keep kind king "
    "lake land last late lead left lend less life lift line list live load loan lock long look lord loss love luck "
    "main make male many mark mass meal mean meet menu mile milk mind mine miss mode moon more most move much name "
    "near neck need news next nice nine note open page pain pair park part pass past path peak pick pink plan play"
).split()


@dataclass(frozen=True)
class Preset:
    size: tuple[int, int]
    lines: tuple[int, int]
    words_per_line: tuple[int, int]
    font_px: tuple[int, int]
    fonts: tuple[str, ...]
    mixed_case: bool = False


PRESETS = {
    "reader": Preset((512, 512), (1, 2), (1, 2), (48, 64), ("DejaVuSans.ttf", "LiberationSans-Regular.ttf")),
    "lines": Preset(
        (768, 1024),
        (3, 8),
        (2, 5),
        (24, 40),
        (
            "DejaVuSans.ttf",
            "DejaVuSerif.ttf",
            "LiberationSans-Regular.ttf",
            "LiberationSerif-Regular.ttf",
            "FreeSans.ttf",
            "NotoSans-Regular.ttf",
        ),
        mixed_case=True,
    ),
}
DEGRADATIONS = ("blur", "noise", "jpeg", "rotate", "contrast")


def installed_fonts(names: tuple[str, ...]) -> list[Path]:
    """The preset's fonts found under the standard font folders, in the preset's order."""
    found = {path.name: path for folder in FONT_DIRS if folder.is_dir() for path in sorted(folder.rglob("*.ttf"))}
    fonts = [found[name] for name in names if name in found]
    if not fonts:
        raise ValueError(f"none of the fonts {', '.join(names)} is installed (e.g. apt-get install fonts-dejavu-core)")
    return fonts


def synthesize(out: str | Path, pages: int, seed: int, preset: str = "reader", degrade: float = 0.0) -> Path:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; the presets are {', '.join(PRESETS)}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    spec = PRESETS[preset]
    fonts = installed_fonts(spec.fonts)
    entries = []
    for index in range(pages):
        rng = random.Random(f"{seed}:{index}")
        image, text, tags = _page(spec, fonts, rng)
        applied = [name for name in DEGRADATIONS if rng.random() < degrade]
        image = _degrade(image, applied, rng)
        name = f"images/{preset}-{seed}-{index:06d}.png"
        image.save(out / name, optimize=False)
        tags.update(preset=preset, seed=seed, degradations=",".join(applied))
        entries.append(PageEntry(source=name, ground_truth=text, tags=tags))
    write_manifest(out, entries)
    return out


def _page(spec: Preset, fonts: list[Path], rng: random.Random) -> tuple[Image.Image, str, dict]:
    width, height = spec.size
    font_path = rng.choice(fonts)
    size = rng.randint(*spec.font_px)
    font = ImageFont.truetype(str(font_path), size)
    image = Image.new("RGB", spec.size, (rng.randint(235, 255),) * 3)
    draw = ImageDraw.Draw(image)
    lines = []
    for _ in range(rng.randint(*spec.lines)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(*spec.words_per_line))]
        if spec.mixed_case:
            words = [w.capitalize() if rng.random() < 0.3 else w for w in words]
            if rng.random() < 0.3:
                words.append(str(rng.randint(1, 9999)))
        line = " ".join(words)
        while len(line) > 1 and draw.textlength(line, font=font) > width - 2 * 16:
            line = line.rsplit(" ", 1)[0] if " " in line else line[:-1]
        lines.append(line)
    line_height = int(size * 1.4)
    x = rng.randint(8, max(8, width // 10))
    y = rng.randint(8, max(8, height - line_height * len(lines) - 8))
    ink = (rng.randint(0, 60),) * 3
    for number, line in enumerate(lines):
        draw.text((x, y + number * line_height), line, font=font, fill=ink)
    return image, "\n".join(lines), {"font": font_path.name, "size": size}


def _degrade(image: Image.Image, applied: list[str], rng: random.Random) -> Image.Image:
    for name in applied:
        if name == "blur":
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
        elif name == "noise":
            noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 12, (image.height, image.width, 1))
            image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))
        elif name == "jpeg":
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=rng.randint(20, 50))
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        elif name == "rotate":
            image = image.rotate(rng.uniform(-2, 2), resample=Image.BICUBIC, fillcolor=(255, 255, 255))
        elif name == "contrast":
            image = Image.fromarray((128 + (np.asarray(image, dtype=np.float32) - 128) * 0.4).astype(np.uint8))
    return image
