import pytest
from PIL import Image

from dsocr.contract import RETRY_NGRAM, OcrOptions
from dsocr.documents.errors import PageError
from dsocr.documents.pages import PageImage
from dsocr.documents.pipeline import ocr_page, ocr_pages, official_image_link
from tests.support.scripted import FINISHED, GROUNDED_PAGE, LOOPING, ScriptedRecognizer, pdf_page


def run(recognizer, page=None, **options) -> object:
    return ocr_page(recognizer, page or pdf_page(), OcrOptions(**options), official_image_link)


def test_a_page_ending_with_eos_is_ok_after_one_attempt():
    result = run(ScriptedRecognizer([FINISHED]))
    assert (result.status, result.finish_reason, result.attempts) == ("ok", "eos", 1)
    assert result.markdown == "Done."


def test_a_page_at_the_token_limit_is_retried_with_the_stricter_ngram_rule():
    recognizer = ScriptedRecognizer([LOOPING, FINISHED])
    result = run(recognizer)
    assert [(call.ngram_size, call.ngram_window) for call in recognizer.calls] == [(30, 90), RETRY_NGRAM]
    assert (result.status, result.finish_reason, result.attempts) == ("ok", "eos", 2)


def test_a_page_still_at_the_limit_after_its_retry_is_incomplete_with_its_text_kept():
    result = run(ScriptedRecognizer([LOOPING]))
    assert (result.status, result.finish_reason, result.attempts) == ("incomplete", "length", 2)
    assert result.markdown == "la la la la"


def test_no_retry_when_retries_are_off():
    recognizer = ScriptedRecognizer([LOOPING])
    assert run(recognizer, retry=False).attempts == 1
    assert len(recognizer.calls) == 1


def test_no_retry_when_the_first_attempt_already_used_the_retry_setting():
    recognizer = ScriptedRecognizer([LOOPING])
    assert run(recognizer, ngram_size=RETRY_NGRAM[0], ngram_window=RETRY_NGRAM[1]).attempts == 1


def test_every_option_reaches_the_recognizer():
    recognizer = ScriptedRecognizer([FINISHED])
    run(recognizer, mode="base", prompt="free", max_new_tokens=77, max_tiles=9, ngram_size=0, ngram_window=10)
    assert recognizer.calls == [
        OcrOptions(mode="base", prompt="free", max_new_tokens=77, max_tiles=9, ngram_size=0, ngram_window=10)
    ]


def test_a_page_that_failed_to_render_is_a_failed_result_and_is_not_recognised():
    recognizer = ScriptedRecognizer([FINISHED])
    error = PageError("render_memory", "over the limit")
    result = run(recognizer, page=PageImage(4, error=error))
    assert (result.index, result.status, result.error, result.attempts) == (4, "failed", error, 0)
    assert recognizer.calls == []


def test_a_recognizer_error_fails_that_page_and_the_next_page_is_still_recognised():
    recognizer = ScriptedRecognizer([(RuntimeError("CUDA out of memory"), ""), FINISHED])
    results = [result for _, result in ocr_pages(recognizer, [pdf_page(0), pdf_page(1)], OcrOptions(retry=False))]
    assert [result.status for result in results] == ["failed", "ok"]
    assert results[0].error == PageError("recognition_failed", "RuntimeError: CUDA out of memory")


def test_token_counts_and_compression_ratio_come_from_the_recognition():
    result = run(ScriptedRecognizer([FINISHED]))
    assert (result.vision_tokens, result.prompt_tokens, result.generated_tokens) == (100, 110, 6)
    assert result.compression_ratio == pytest.approx(0.06)


def test_grounded_output_becomes_blocks_with_pixel_and_point_boxes():
    result = run(ScriptedRecognizer([(GROUNDED_PAGE, "eos")]))
    assert [block.label for block in result.blocks] == ["title", "image", "image_caption", "table", "equation"]
    title = result.blocks[0]
    assert title.bbox.bins == (100, 40, 900, 90)
    assert title.bbox.px == (122, 63, 1102, 142)  # int(bin / 999 * size), as the official scripts crop
    # x from the left edge 100 pt; y from the top edge 992 pt downwards.
    assert title.bbox.pt == pytest.approx(
        (100 + 100 / 999 * 612, 992 - 90 / 999 * 792, 100 + 900 / 999 * 612, 992 - 40 / 999 * 792), abs=0.01
    )


def test_a_full_page_box_maps_to_the_rendered_page_box_on_a_rotated_page():
    result = run(
        ScriptedRecognizer([("<|ref|>text<|/ref|><|det|>[[0, 0, 999, 999]]<|/det|>\nall", "eos")]),
        page=pdf_page(rotation=90),
    )
    assert result.blocks[0].bbox.pt == pytest.approx((100.0, 200.0, 712.0, 992.0), abs=0.01)


def test_a_block_with_several_boxes_has_their_union_as_bbox():
    equation = run(ScriptedRecognizer([(GROUNDED_PAGE, "eos")])).blocks[-1]
    assert [box.bins for box in equation.boxes] == [(100, 850, 600, 900), (620, 850, 900, 900)]
    assert equation.bbox.bins == (100, 850, 900, 900)
    assert equation.bbox.px == (
        equation.boxes[0].px[0],
        equation.boxes[0].px[1],
        equation.boxes[1].px[2],
        equation.boxes[1].px[3],
    )


def test_image_blocks_link_their_crop_by_page_number_in_the_markdown_and_the_block():
    result = run(ScriptedRecognizer([(GROUNDED_PAGE, "eos")]), page=pdf_page(index=2))
    figure = result.blocks[1]
    assert figure.image == "images/3_0.jpg"
    assert "![](images/3_0.jpg)" in result.markdown


def test_an_image_input_has_pixel_boxes_but_no_points():
    page = PageImage(0, Image.new("RGB", (1000, 500)), render_seconds=0.001)
    result = run(ScriptedRecognizer([(GROUNDED_PAGE, "eos")]), page=page)
    assert result.blocks[0].bbox.px == (100, 20, 900, 45)
    assert all(box.pt is None for block in result.blocks for box in block.boxes)


def test_a_page_cut_inside_a_tag_keeps_its_text_and_is_flagged_malformed():
    cut = GROUNDED_PAGE[: GROUNDED_PAGE.index("[620")]
    result = run(ScriptedRecognizer([(cut, "length")]), retry=False)
    assert result.status == "incomplete" and result.malformed
    assert "E = mc^2" not in result.markdown and "# Quarterly report" in result.markdown
