import os
import subprocess
import sys
import time
from pathlib import Path

import pikepdf
import pytest

from dsocr.documents.admission import parse_page_ranges
from dsocr.documents.errors import BadPageRange, DocumentError, PageError
from dsocr.documents.pages import PageImage
from dsocr.documents.rendering import RenderPool, open_document, render_page
from tests.support.documents import (
    LETTER,
    LETTER_PX_AT_144_DPI,
    empty_file,
    encrypted_pdf,
    flate_bomb_pdf,
    html_named_pdf,
    image_bytes,
    letter_pdf,
    pdf_with_20000_pages,
    png_of_20000_squared,
    png_with_garbage_after_its_signature,
    save,
    shaded_pdf,
    truncated_pdf,
    zero_page_pdf,
)

#: Every bad file must be answered within this many seconds.
DEADLINE_S = 5.0


def grey_level(page: PageImage) -> int:
    """Red channel at the page centre: 0.9 g renders as 229, each later page 25 or 26 darker."""
    width, height = page.size_px
    return page.image.getpixel((width // 2, height // 2))[0]


def exit_on_second_page(document, index, dpi, max_side_px):
    if index == 1:
        os._exit(3)
    return render_page(document, index, dpi, max_side_px)


def hang_on_second_page(document, index, dpi, max_side_px):
    if index == 1:
        time.sleep(60)
    return render_page(document, index, dpi, max_side_px)


@pytest.fixture(scope="module")
def pool():
    with RenderPool(workers=2) as pool:
        yield pool


def render(pool: RenderPool, data: bytes, pages: str | None = None, **options) -> list[PageImage]:
    with pool.open(data, pages, **options) as document:
        return list(document)


def test_pdf_pages_render_in_order_at_144_dpi(pool):
    pages = render(pool, save(shaded_pdf(3)))
    assert [page.index for page in pages] == [0, 1, 2]
    assert all(page.error is None and page.image.mode == "RGB" for page in pages)
    assert {page.size_px for page in pages} == {LETTER_PX_AT_144_DPI}
    assert {page.dpi for page in pages} == {144}
    assert {page.size_pt for page in pages} == {LETTER}
    levels = [grey_level(page) for page in pages]
    assert levels == sorted(levels, reverse=True) and len(set(levels)) == 3


def test_document_reports_type_page_count_and_selection(pool):
    with pool.open(save(shaded_pdf(5)), "2-3") as document:
        assert (document.kind, document.page_count, document.page_indices) == ("pdf", 5, [1, 2])


def test_page_range_renders_only_the_chosen_pages_in_order(pool):
    everything = render(pool, save(shaded_pdf(4)))
    chosen = render(pool, save(shaded_pdf(4)), "4,2")
    assert [page.index for page in chosen] == [1, 3]
    assert [grey_level(page) for page in chosen] == [grey_level(everything[1]), grey_level(everything[3])]


def test_parse_page_ranges_gives_sorted_unique_zero_based_indices():
    assert parse_page_ranges("7, 1-3,2 - 3,3", 10) == [0, 1, 2, 6]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        pytest.param("3-1", "reversed", id="reversed"),
        pytest.param("0", "numbered from 1", id="page-zero"),
        pytest.param("0-2", "numbered from 1", id="range-from-zero"),
        pytest.param("11", "past the last page", id="page-past-the-end"),
        pytest.param("5-11", "past the last page", id="range-past-the-end"),
        pytest.param("abc", "cannot read", id="words"),
        pytest.param("1-", "cannot read", id="open-end"),
        pytest.param("-2", "cannot read", id="open-start"),
        pytest.param("1,,2", "cannot read", id="empty-part"),
        pytest.param("", "cannot read", id="empty"),
        pytest.param("1.5", "cannot read", id="fraction"),
        pytest.param("²", "cannot read", id="non-ascii-digit"),
    ],
)
def test_parse_page_ranges_rejects_bad_ranges(text, complaint):
    with pytest.raises(BadPageRange, match=complaint) as raised:
        parse_page_ranges(text, 10)
    assert raised.value.code == "bad_page_range"


def test_page_range_past_the_last_page_is_rejected_at_open(pool):
    with pytest.raises(BadPageRange):
        pool.open(save(shaded_pdf(3)), "4")


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (empty_file, "empty_file"),
        (html_named_pdf, "unsupported_type"),
        (truncated_pdf, "corrupt_pdf"),
        (encrypted_pdf, "encrypted_pdf"),
        (zero_page_pdf, "no_pages"),
        (pdf_with_20000_pages, "too_many_pages"),
        (png_of_20000_squared, "image_too_large"),
        (png_with_garbage_after_its_signature, "corrupt_image"),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_bad_file_gets_its_code_quickly_and_the_pool_keeps_working(pool, make, code):
    data = make()
    start = time.monotonic()
    with pytest.raises(DocumentError) as raised:
        pool.open(data)
    assert time.monotonic() - start < DEADLINE_S
    assert raised.value.code == code
    [page] = render(pool, save(shaded_pdf(1)))
    assert page.size_px == LETTER_PX_AT_144_DPI


def test_page_range_brings_a_long_document_under_max_pages(pool):
    pages = render(pool, pdf_with_20000_pages(), "19999-20000")
    assert [page.index for page in pages] == [19998, 19999]
    assert {page.size_px for page in pages} == {LETTER_PX_AT_144_DPI}


def test_pdf_header_after_leading_junk_is_accepted(pool):
    [page] = render(pool, b"Content-Type: application/pdf\r\n\r\n" + save(shaded_pdf(1)))
    assert page.size_px == LETTER_PX_AT_144_DPI


def test_pdf_with_only_an_owner_password_renders(pool):
    data = save(shaded_pdf(1), encryption=pikepdf.Encryption(user="", owner="owner"))
    [page] = render(pool, data)
    assert page.error is None


def test_huge_page_is_rendered_at_the_max_side_with_a_lower_dpi(pool):
    start = time.monotonic()
    [page] = render(pool, save(shaded_pdf(1, size=(200_000, 100_000))))
    assert time.monotonic() - start < DEADLINE_S
    assert page.size_px == (4096, 2048)
    assert page.dpi == pytest.approx(4096 / 200_000 * 72)


def test_max_side_px_caps_an_ordinary_page(pool):
    [page] = render(pool, save(shaded_pdf(1)), max_side_px=792)
    assert page.size_px == (612, 792)
    assert page.dpi == pytest.approx(72)


def test_compression_bomb_fails_its_page_and_the_next_page_renders():
    data = flate_bomb_pdf(inflated_mib=512)
    with RenderPool(workers=1, memory_limit_bytes=256 << 20) as pool:
        start = time.monotonic()
        bomb, after = render(pool, data)
        assert time.monotonic() - start < DEADLINE_S
    assert bomb.image is None and bomb.error.code == "render_memory"
    assert after.error is None and after.size_px == LETTER_PX_AT_144_DPI


def test_worker_that_dies_fails_its_page_and_the_next_page_renders():
    with RenderPool(workers=1, render_page=exit_on_second_page) as pool:
        pages = render(pool, save(shaded_pdf(3)))
    assert [page.error.code if page.error else "ok" for page in pages] == ["ok", "render_failed", "ok"]
    assert "exit status 3" in pages[1].error.message


def test_page_over_the_time_limit_fails_and_the_next_page_renders():
    with RenderPool(workers=1, page_timeout_s=0.5, render_page=hang_on_second_page) as pool:
        start = time.monotonic()
        pages = render(pool, save(shaded_pdf(3)))
        assert time.monotonic() - start < DEADLINE_S
    assert [page.error.code if page.error else "ok" for page in pages] == ["ok", "render_timeout", "ok"]


def report_loaded_modules(document, index: int, dpi: float, max_side_px: int) -> PageImage:
    """A render function that answers with the names of the heavy modules loaded in its worker."""
    loaded = sorted(name for name in ("torch", "dsocr.model.inference", "dsocr.cli") if name in sys.modules)
    return PageImage(index, error=PageError("probe", ",".join(loaded)))


def test_render_workers_do_not_load_the_callers_modules(tmp_path):
    # A main script that imports torch, as the dsocr command does: multiprocessing workers would re-run it.
    script = tmp_path / "main.py"
    script.write_text(
        "import torch\n"
        "from dsocr.documents.rendering import RenderPool\n"
        "from tests.documents.test_rendering import render, report_loaded_modules\n"
        "from tests.support.documents import save, shaded_pdf\n"
        "if __name__ == '__main__':\n"
        "    with RenderPool(workers=1, render_page=report_loaded_modules) as pool:\n"
        "        [page] = render(pool, save(shaded_pdf(1)))\n"
        "    print(repr(page.error.message))\n"
    )
    checkout = str(Path(__file__).resolve().parents[2])
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": checkout},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "''"


def test_closing_a_document_early_leaves_the_pool_working(pool):
    with pool.open(save(shaded_pdf(6))) as document:
        next(iter(document))
    pages = render(pool, save(shaded_pdf(2)))
    assert [page.index for page in pages] == [0, 1]
    assert grey_level(pages[0]) > grey_level(pages[1])


def test_pool_refuses_a_second_document_while_one_is_being_read(pool):
    with pool.open(save(shaded_pdf(3))) as document:
        next(iter(document))
        with pytest.raises(RuntimeError, match="one document at a time"):
            pool.open(save(shaded_pdf(1)))


def test_rotated_page_renders_with_swapped_size_and_records_its_rotation(pool):
    [page] = render(pool, letter_pdf(Rotate=90))
    assert page.size_px == LETTER_PX_AT_144_DPI[::-1]
    assert page.size_pt == LETTER[::-1]
    assert page.rotation == 90


def test_mediabox_origin_is_recorded(pool):
    [page] = render(pool, letter_pdf(MediaBox=[100, 200, 712, 992]))
    assert page.box_pt == (100, 200, 712, 992)
    assert page.size_px == LETTER_PX_AT_144_DPI


def test_cropbox_sets_the_rendered_area_and_origin(pool):
    [page] = render(pool, letter_pdf(CropBox=[150, 250, 450, 650]))
    assert page.box_pt == (150, 250, 450, 650)
    assert page.size_px == (600, 800)


@pytest.mark.parametrize(("image_format", "kind"), [("PNG", "png"), ("JPEG", "jpeg"), ("TIFF", "tiff")])
def test_image_becomes_a_one_page_document(pool, image_format, kind):
    with pool.open(image_bytes(image_format)) as document:
        assert (document.kind, document.page_count) == (kind, 1)
        [page] = document
    assert (page.index, page.size_px, page.image.mode, page.error) == (0, (300, 200), "RGB", None)


def test_image_type_comes_from_the_bytes_not_a_pdf_header_later_in_the_file(pool):
    with pool.open(image_bytes("PNG") + b"%PDF-1.7") as document:
        assert document.kind == "png"


def test_open_document_renders_with_workers_of_its_own():
    with open_document(save(shaded_pdf(2)), "2", workers=1) as document:
        [page] = document
    assert (page.index, page.size_px) == (1, LETTER_PX_AT_144_DPI)
