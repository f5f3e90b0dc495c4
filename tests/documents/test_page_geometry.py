"""PageImage.to_points maps boxes found in page images back to PDF user space, and render_seconds is recorded."""

import io

import numpy as np
import pikepdf
import pytest
from PIL import Image

from dsocr.documents.errors import PageError
from dsocr.documents.pages import PageImage
from dsocr.documents.rendering import RenderPool, open_document

#: A letter page whose MediaBox origin is off (0, 0), so a forgotten origin shows.
MEDIA_BOX = (100, 200, 712, 992)
#: Where the red rectangle is drawn, in user space: (x0, y0, x1, y1).
RED_RECT = (250, 400, 370, 460)


def letter_page(rotation: int) -> PageImage:
    """A hand-built page at 144 dpi (2 px per point) showing MEDIA_BOX turned by ``rotation``."""
    size_pt = (612, 792) if rotation in (0, 180) else (792, 612)
    image = Image.new("RGB", (2 * size_pt[0], 2 * size_pt[1]), "white")
    return PageImage(index=0, image=image, dpi=144, size_pt=size_pt, rotation=rotation, box_pt=MEDIA_BOX)


def red_rectangle_pdf(**page_keys) -> bytes:
    """One page with MEDIA_BOX, white, with RED_RECT filled pure red; ``page_keys`` (Rotate, CropBox) added."""
    pdf = pikepdf.new()
    pdf.add_blank_page()
    page = pdf.pages[0]
    page.MediaBox = pikepdf.Array(MEDIA_BOX)
    left, bottom, right, top = MEDIA_BOX
    x0, y0, x1, y1 = RED_RECT
    page.Contents = pdf.make_stream(
        f"1 g {left} {bottom} {right - left} {top - bottom} re f 1 0 0 rg {x0} {y0} {x1 - x0} {y1 - y0} re f".encode()
    )
    for key, value in page_keys.items():
        page.obj[f"/{key}"] = value
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def render_one(data: bytes) -> PageImage:
    with open_document(data, workers=1) as document:
        [page] = document
    return page


def red_box_px(image: Image.Image) -> tuple[float, float, float, float]:
    """Bounding box (x1, y1, x2, y2) of the pure-red pixels, x2 and y2 exclusive like a pixel box."""
    pixels = np.asarray(image).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    rows, columns = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    return (float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1))


def fail_to_render(document, index, dpi, max_side_px):
    """A render_page replacement for the workers; module-level so that it can be pickled."""
    raise RuntimeError("this page cannot be rendered")


# --- the mapping, on hand-built pages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rotation", "corner_pt"),
    [
        pytest.param(0, (100, 991, 101, 992), id="0-top-left"),
        pytest.param(90, (100, 200, 101, 201), id="90-bottom-left"),
        pytest.param(180, (711, 200, 712, 201), id="180-bottom-right"),
        pytest.param(270, (711, 991, 712, 992), id="270-top-right"),
    ],
)
def test_top_left_pixels_map_to_the_page_corner_the_rotation_turned_there(rotation, corner_pt):
    page = letter_page(rotation)
    assert page.to_points((0, 0, 2, 2)) == corner_pt  # 2 px = 1 pt at 144 dpi


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_whole_image_maps_to_the_page_box(rotation):
    page = letter_page(rotation)
    assert page.to_points((0, 0, *page.size_px)) == MEDIA_BOX


def test_points_are_rounded_to_hundredths():
    page = PageImage(index=0, dpi=300, size_pt=(612, 792), box_pt=(0, 0, 612, 792))
    assert page.to_points((1, 1, 2, 2)) == (0.24, 791.52, 0.48, 791.76)


def test_image_input_has_no_points():
    page = PageImage(index=0, image=Image.new("RGB", (300, 200)))
    assert page.to_points((0, 0, 10, 10)) is None


def test_failed_page_has_no_points():
    page = PageImage(index=0, error=PageError("render_failed", "RuntimeError: boom"))
    assert page.to_points((0, 0, 10, 10)) is None


# --- the mapping, on rendered pages --------------------------------------------------------------------------


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rendered_rectangle_maps_back_to_where_it_was_drawn(rotation):
    page = render_one(red_rectangle_pdf(Rotate=rotation))
    assert page.rotation == rotation
    assert page.to_points(red_box_px(page.image)) == pytest.approx(RED_RECT, abs=1)


def test_rendered_rectangle_maps_back_through_a_cropbox():
    page = render_one(red_rectangle_pdf(CropBox=[200, 300, 600, 900]))
    assert page.size_px == (800, 1200)  # the crop, not the MediaBox, was rendered
    assert page.to_points(red_box_px(page.image)) == pytest.approx(RED_RECT, abs=1)


# --- render_seconds --------------------------------------------------------------------------------------------


def test_rendered_pdf_page_records_its_render_time():
    page = render_one(red_rectangle_pdf())
    assert isinstance(page.render_seconds, float) and page.render_seconds > 0


def test_image_input_records_its_decode_time():
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buffer, "PNG")
    page = render_one(buffer.getvalue())
    assert isinstance(page.render_seconds, float) and page.render_seconds > 0


def test_failed_page_has_no_render_time():
    with RenderPool(workers=1, render_page=fail_to_render) as pool, pool.open(red_rectangle_pdf()) as document:
        [page] = document
    assert page.error is not None and page.render_seconds is None
