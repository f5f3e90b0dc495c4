"""Draw the bundled sample page (a US-letter page at 144 dpi: heading, paragraphs, a table).

Run from the repository root: ``python scripts/make_sample_page.py``. The PNG is committed; this script
records how it was made.
"""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path("dsocr/samples/sample-page.png")
WIDTH, HEIGHT, MARGIN = 1224, 1584, 110

PARAGRAPHS = [
    "DeepSeek-OCR compresses a page into a few hundred vision tokens and decodes them back into text. "
    "This sample page exercises the document path end to end: a heading, running text and a table.",
    "Pages are rendered at 144 dpi. In Gundam mode the page is cut into 640-pixel tiles and a 1024-pixel "
    "global view, and the decoder sees both, the tiles first.",
]
TABLE = [
    ["Mode", "Resolution", "Vision tokens"],
    ["Tiny", "512", "64"],
    ["Small", "640", "100"],
    ["Base", "1024", "256"],
    ["Large", "1280", "400"],
    ["Gundam", "n x 640 + 1024", "n x 100 + 256"],
]


def wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width:
            line = candidate
        else:
            lines.append(line)
            line = word
    return lines + [line]


def main() -> None:
    page = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(page)
    title, body = ImageFont.load_default(48), ImageFont.load_default(28)
    y = MARGIN
    draw.text((MARGIN, y), "1. Optical context compression", font=title, fill="black")
    y += 100
    for paragraph in PARAGRAPHS:
        for line in wrap(draw, paragraph, body, WIDTH - 2 * MARGIN):
            draw.text((MARGIN, y), line, font=body, fill="black")
            y += 40
        y += 30
    cell_w, cell_h = (WIDTH - 2 * MARGIN) // 3, 56
    for r, row in enumerate(TABLE):
        for c, text in enumerate(row):
            x0, y0 = MARGIN + c * cell_w, y + r * cell_h
            draw.rectangle([x0, y0, x0 + cell_w, y0 + cell_h], outline="black", width=2)
            draw.text((x0 + 14, y0 + 12), text, font=body, fill="black")
    y += len(TABLE) * cell_h + 20
    draw.text((MARGIN, y), "Table 1: vision tokens per mode.", font=body, fill="black")
    page.save(OUT, optimize=True)


if __name__ == "__main__":
    main()
