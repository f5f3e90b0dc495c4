"""The pages as the demo shows them: rendered from the upload, the API's boxes drawn, the Markdown in pieces."""

import io

from PIL import Image

from dsocr.web.pages import COLOURS, DISPLAY_WIDTH, draw_blocks, markdown_pieces, page_images
from tests.support.documents import save, shaded_pdf


def block(label: str, *boxes: list[int]) -> dict:
    return {"label": label, "text": "", "bbox": None, "boxes": [{"bins": box} for box in boxes], "image": None}


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def test_every_box_of_a_block_is_outlined_in_its_labels_colour():
    page = Image.new("RGB", (1000, 1000), "white")
    drawn = draw_blocks(page, [block("title", [100, 100, 500, 200]), block("table", [100, 600, 900, 900])])
    assert drawn.getpixel((300, 100)) == rgb(COLOURS["title"])  # on the top edge of the title's box
    assert drawn.getpixel((500, 900)) == rgb(COLOURS["table"])
    assert drawn.getpixel((300, 400)) == (255, 255, 255)  # between the boxes, nothing
    assert page.getpixel((300, 100)) == (255, 255, 255)  # the page itself is left as it was


def test_boxes_are_placed_by_their_bins_whatever_the_image_size():
    drawn = draw_blocks(Image.new("RGB", (500, 2000), "white"), [block("text", [0, 500, 999, 999])])
    assert drawn.getpixel((250, 1001)) == rgb(COLOURS["text"])  # bin 500 of 999 across 2000 px


def test_a_pdfs_pages_are_rendered_at_the_display_width():
    images = page_images(save(shaded_pdf(3)), [0, 2])
    assert sorted(images) == [0, 2]
    assert all(abs(image.width - DISPLAY_WIDTH) <= 1 for image in images.values())  # to rounding
    assert images[2].getpixel((10, 10)) < images[0].getpixel((10, 10))  # the later page is darker


def test_an_image_is_its_own_single_page():
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "red").save(buffer, "PNG")
    assert page_images(buffer.getvalue(), [0])[0].size == (300, 200)


def test_tables_are_html_pieces_and_display_formulas_become_streamlit_math():
    pieces = markdown_pieces("# Title\n\n<table><tr><td>a</td></tr></table>\n\n\\[ E = mc^2 \\]")
    assert pieces == [
        ("markdown", "# Title\n\n"),
        ("html", "<table><tr><td>a</td></tr></table>"),
        ("markdown", "\n\n$$\nE = mc^2\n$$"),
    ]
