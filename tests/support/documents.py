"""Documents for the tests, built from raw PDF objects and images: realistic samples, and the bad files users send."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pikepdf
from PIL import Image

LETTER = (612, 792)
LETTER_PX_AT_144_DPI = (1224, 1584)


def save(pdf: pikepdf.Pdf, **options) -> bytes:
    buffer = io.BytesIO()
    pdf.save(buffer, **options)
    return buffer.getvalue()


def shaded_pdf(page_count: int, size: tuple[float, float] = LETTER) -> pikepdf.Pdf:
    """Pages filled with a grey that darkens with the page number, so page order shows in the pixels."""
    pdf = pikepdf.new()
    for number in range(page_count):
        pdf.add_blank_page()
        pdf.pages[number].MediaBox = pikepdf.Array([0, 0, *size])  # add_blank_page refuses pages over 14,400 pt
        grey = 0.9 - 0.1 * number
        pdf.pages[number].Contents = pdf.make_stream(f"{grey:.1f} g 0 0 {size[0]} {size[1]} re f".encode())
    return pdf


def letter_pdf(**page_keys) -> bytes:
    """One letter page with ``page_keys`` (Rotate, MediaBox, CropBox) set on its page dictionary."""
    pdf = shaded_pdf(1)
    for key, value in page_keys.items():
        pdf.pages[0].obj[f"/{key}"] = value
    return save(pdf)


def image_bytes(image_format: str, size: tuple[int, int] = (300, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, image_format)
    return buffer.getvalue()


def empty_file() -> bytes:
    return b""


def html_named_pdf() -> bytes:
    return b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>"


def truncated_pdf() -> bytes:
    data = save(shaded_pdf(3))
    return data[: len(data) // 2]


def encrypted_pdf() -> bytes:
    return save(shaded_pdf(1), encryption=pikepdf.Encryption(user="secret", owner="owner"))


def zero_page_pdf() -> bytes:
    return save(pikepdf.new())


def pdf_with_20000_pages() -> bytes:
    """20,000 references to one page object: a 120 kB file whose every page PDFium would render."""
    pdf = shaded_pdf(1)
    page = pdf.pages[0].obj
    pdf.Root.Pages.Kids = pikepdf.Array([page] * 20_000)
    pdf.Root.Pages.Count = 20_000
    return save(pdf)


def png_of_20000_squared() -> bytes:
    """A 48 kB PNG claiming 400 million pixels, over Pillow's decompression-bomb limit."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")
    return buffer.getvalue()


def png_with_garbage_after_its_signature() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 100


def flate_bomb_pdf(inflated_mib: int) -> bytes:
    """A first page whose content stream, a few MB of Flate data, inflates to ``inflated_mib`` MiB of spaces;
    a second, ordinary page."""
    pdf = shaded_pdf(2)
    compressor = zlib.compressobj(1)
    spaces = b" " * (1 << 20)
    compressed = b"".join(compressor.compress(spaces) for _ in range(inflated_mib)) + compressor.flush()
    pdf.pages[0].Contents = pikepdf.Stream(pdf, compressed, Filter=pikepdf.Name.FlateDecode)
    return save(pdf)


# Replacements for render_page, run inside the workers; module-level so that they can be pickled.


def _text(x: float, y: float, size: float, text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"BT /F1 {size:g} Tf {x:g} {y:g} Td ({escaped}) Tj ET\n"


def _text_page() -> str:
    paragraphs = [
        "Revenue grew 12 percent over the year, led by the new document services.",
        "Operating costs stayed flat while the team moved its OCR workloads to GPUs.",
        "The board recommends a dividend of 0.40 per share, payable in March.",
    ]
    content = _text(72, 700, 24, "Annual Report 2024")
    for number, paragraph in enumerate(paragraphs):
        content += _text(72, 650 - 40 * number, 12, paragraph)
    return content


def _table_page() -> str:
    rows = [("Region", "Q1", "Q2", "Q3"), ("North", "120", "135", "150"), ("South", "98", "102", "117")]
    left, top, width, height = 72, 700, 120, 30
    right, bottom = left + width * len(rows[0]), top - height * len(rows)
    content = _text(72, 730, 16, "Table 1: Sales by region")
    content += f"1 w {left} {bottom} {right - left} {top - bottom} re S\n"
    for row in range(1, len(rows)):
        content += f"{left} {top - row * height} m {right} {top - row * height} l S\n"
    for column in range(1, len(rows[0])):
        content += f"{left + column * width} {bottom} m {left + column * width} {top} l S\n"
    for row, cells in enumerate(rows):
        for column, cell in enumerate(cells):
            content += _text(left + column * width + 8, top - (row + 1) * height + 10, 12, cell)
    return content


def _gradient(pdf: pikepdf.Pdf, width: int = 200, height: int = 150) -> pikepdf.Stream:
    """An RGB image XObject: red rising left to right, blue top to bottom."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    pixels[..., 2] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    pixels[..., 1] = 96
    return pikepdf.Stream(
        pdf,
        pixels.tobytes(),
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=width,
        Height=height,
        ColorSpace=pikepdf.Name.DeviceRGB,
        BitsPerComponent=8,
    )


def _figure_page() -> str:
    return "q 400 0 0 300 106 380 cm /Im1 Do Q\n" + _text(106, 350, 12, "Figure 1: Colour gradient, 200 x 150 pixels")


def report_pdf() -> bytes:
    """A 3-page US-letter report: a title and paragraphs, a ruled table, and an image with a caption."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )
    contents = [_text_page(), _table_page(), _figure_page()]
    for content in contents:
        page = pdf.add_blank_page(page_size=LETTER)
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.Contents = pdf.make_stream(content.encode("latin-1"))
    pdf.pages[2].Resources.XObject = pikepdf.Dictionary(Im1=_gradient(pdf))
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()
