"""The pages of the uploaded document as images, with the model's blocks drawn on them, and the page's Markdown in
the pieces Streamlit can show: text with LaTeX, and HTML tables.

Boxes are drawn from their ``bins`` (0–999 across the page image, as the model wrote them), so they land in the
same place whatever resolution the page is shown at.
"""

from __future__ import annotations

import io
import re

import pypdfium2
from PIL import Image, ImageDraw, ImageOps

#: Shown at this width: enough to read, small enough for a browser to take a long document.
DISPLAY_WIDTH = 900
#: One colour per layout label the model uses; anything else is grey.
COLOURS = {
    "title": "#d62728",
    "sub_title": "#ff7f0e",
    "text": "#1f77b4",
    "table": "#2ca02c",
    "table_caption": "#98df8a",
    "image": "#9467bd",
    "image_caption": "#c5b0d5",
    "equation": "#8c564b",
    "list": "#17becf",
}
OTHER = "#7f7f7f"
_TABLE = re.compile(r"(<table\b.*?</table>)", re.DOTALL | re.IGNORECASE)
_DISPLAY_MATH = re.compile(r"\\\[(.*?)\\\]", re.DOTALL)


def page_images(upload: bytes, indices: list[int]) -> dict[int, Image.Image]:
    """The pages ``indices`` (0-based) of a PDF, or the frames of an image, at the display width."""
    if upload.startswith(b"%PDF"):
        pdf = pypdfium2.PdfDocument(upload)
        try:
            images = {}
            for index in indices:
                page = pdf[index]
                width = page.get_width()
                images[index] = page.render(scale=DISPLAY_WIDTH / width).to_pil().convert("RGB")
            return images
        finally:
            pdf.close()
    image = Image.open(io.BytesIO(upload))
    images = {}
    for index in indices:
        image.seek(index)
        frame = ImageOps.exif_transpose(image).convert("RGB")  # as the API reads it: EXIF orientation applied
        frame.thumbnail((DISPLAY_WIDTH, DISPLAY_WIDTH * 4))
        images[index] = frame
    return images


def colour(label: str) -> str:
    return COLOURS.get(label, OTHER)


def draw_blocks(image: Image.Image, blocks: list[dict]) -> Image.Image:
    """A copy of ``image`` with every box of every block outlined in its label's colour and the label written."""
    drawn = image.copy()
    draw = ImageDraw.Draw(drawn)
    width, height = drawn.size
    line = max(2, width // 300)
    for block in blocks:
        for box in block.get("boxes") or []:
            x1, y1, x2, y2 = box["bins"]
            corners = (x1 / 999 * width, y1 / 999 * height, x2 / 999 * width, y2 / 999 * height)
            draw.rectangle(corners, outline=colour(block["label"]), width=line)
            draw.text((corners[0] + line, corners[1] + line), block["label"], fill=colour(block["label"]))
    return drawn


def markdown_pieces(markdown: str) -> list[tuple[str, str]]:
    """``("markdown", text)`` and ``("html", table)`` pieces in order; display formulas in Streamlit's ``$$``."""
    pieces = []
    for number, piece in enumerate(_TABLE.split(markdown)):
        if number % 2:
            pieces.append(("html", piece))
        elif piece.strip():
            pieces.append(("markdown", _DISPLAY_MATH.sub(lambda m: f"$$\n{m.group(1).strip()}\n$$", piece)))
    return pieces
