"""Realistic sample documents built from raw PDF objects, for end-to-end tests."""

from __future__ import annotations

import io

import numpy as np
import pikepdf

LETTER = (612, 792)


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
