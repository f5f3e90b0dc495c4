import json

import jsonschema
import pytest
from PIL import Image

from dsocr.contract import OcrOptions
from dsocr.documents.errors import PageError
from dsocr.documents.output import PAGE_SEPARATOR, DocumentInfo, DocumentWriter, document_markdown, document_record
from dsocr.documents.pages import PageImage
from dsocr.documents.pipeline import ocr_pages
from dsocr.documents.record import SCHEMA_PATH
from tests.support.scripted import FINISHED, GROUNDED_PAGE, LOOPING, ScriptedRecognizer, pdf_page

SCHEMA = json.loads(SCHEMA_PATH.read_text())
MODEL = {"id": "deepseek-ai/DeepSeek-OCR", "revision": "9f30c71"}


def info(page_indices: list[int]) -> DocumentInfo:
    return DocumentInfo("report.pdf", "ab" * 32, 1234, "pdf", 5, page_indices)


def results(outputs, pages, writer=None):
    recognizer = ScriptedRecognizer(outputs)
    link = writer.image_link if writer else None
    return [(page, result) for page, result in ocr_pages(recognizer, pages, OcrOptions(), link)]


def record_of(pages_and_results, indices=None) -> dict:
    page_results = [result for _, result in pages_and_results]
    return document_record(
        info(indices or [r.index for r in page_results]), MODEL, OcrOptions(), 144, page_results, 1.5
    ).model_dump(mode="json")


def validate(record: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(record)


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_a_document_with_ok_incomplete_and_failed_pages_matches_the_schema():
    pages = [pdf_page(0), pdf_page(1), PageImage(2, error=PageError("render_timeout", "took too long"))]
    record = record_of(results([(GROUNDED_PAGE, "eos"), LOOPING, LOOPING], pages))
    validate(record)
    assert [page["status"] for page in record["pages"]] == ["ok", "incomplete", "failed"]
    assert record["summary"] | {"seconds": None} == {
        "pages": 3, "ok": 1, "incomplete": 1, "failed": 1, "vision_tokens": 200, "generated_tokens": record["summary"]["generated_tokens"], "seconds": None
    }  # fmt: skip


def test_an_image_input_matches_the_schema_with_null_geometry():
    page = PageImage(0, Image.new("RGB", (800, 600)), render_seconds=0.002)
    record = record_of(results([(GROUNDED_PAGE, "eos")], [page]))
    validate(record)
    assert (record["pages"][0]["dpi"], record["pages"][0]["box_pt"]) == (None, None)


def test_the_schema_rejects_a_record_missing_a_field_or_with_an_unknown_one():
    record = record_of(results([FINISHED], [pdf_page()]))
    del record["pages"][0]["finish_reason"]
    with pytest.raises(jsonschema.ValidationError, match="finish_reason"):
        validate(record)
    record = record_of(results([FINISHED], [pdf_page()]))
    record["pages"][0]["blocks"] = [{"label": "text", "text": "", "bbox": None, "boxes": [], "image": None, "score": 1}]
    with pytest.raises(jsonschema.ValidationError, match="score"):
        validate(record)


def test_blocks_carry_label_text_and_boxes_in_bins_pixels_and_points():
    block = record_of(results([(GROUNDED_PAGE, "eos")], [pdf_page()]))["pages"][0]["blocks"][0]
    assert block["label"] == "title" and block["text"] == "# Quarterly report"
    assert block["bbox"]["bins"] == [100, 40, 900, 90]
    assert block["bbox"]["px"] == [122, 63, 1102, 142]
    assert block["bbox"]["pt"] == pytest.approx([161.26, 920.65, 651.35, 960.29], abs=0.01)
    assert block["boxes"] == [block["bbox"]]


def test_the_record_keeps_the_document_lineage_and_options():
    record = record_of(results([FINISHED], [pdf_page(1), pdf_page(3)]), indices=[1, 3])
    assert record["document"] == {
        "name": "report.pdf", "sha256": "ab" * 32, "size_bytes": 1234, "type": "pdf", "page_count": 5, "pages": [2, 4]
    }  # fmt: skip
    assert record["model"] == {**MODEL, "lineage": None}  # a checkpoint dsocr train did not write
    assert record["options"]["retry_ngram"] == [20, 50]
    assert [page["number"] for page in record["pages"]] == [2, 4]


def test_document_markdown_separates_pages_and_notes_failed_and_incomplete_ones():
    pages = [pdf_page(0), PageImage(1, error=PageError("render_memory", "over the limit")), pdf_page(2)]
    markdown = document_markdown([result for _, result in results([FINISHED, LOOPING, LOOPING], pages)])
    first, second, third = markdown.split(PAGE_SEPARATOR)
    assert first == "Done."
    assert second == "<!-- dsocr: page 2 failed (render_memory): over the limit -->"
    assert third == "la la la la\n\n<!-- dsocr: page 3 stopped at the token limit; its text may be incomplete -->\n"


def test_the_writer_saves_each_figure_crop_where_the_markdown_links_it(tmp_path):
    writer = DocumentWriter(tmp_path, "report")
    page = pdf_page(1)
    page.image.paste((255, 0, 0), (200, 300, 500, 600))
    [(page, result)] = results([(GROUNDED_PAGE, "eos")], [page], writer)
    writer.save_crops(page, result)
    assert "![](report_images/2_0.jpg)" in result.markdown
    crop = Image.open(tmp_path / "report_images" / "2_0.jpg")
    assert crop.size == (612 - 122, 713 - 237)  # the image block's pixel box
    assert crop.getpixel((100, 100))[0] > 200 and crop.getpixel((100, 100))[1] < 60  # red: the pasted figure


def test_a_degenerate_figure_box_still_gets_a_one_pixel_crop(tmp_path):
    writer = DocumentWriter(tmp_path, "doc")
    text = "<|ref|>image<|/ref|><|det|>[[999, 500, 999, 400]]<|/det|>"
    [(page, result)] = results([(text, "eos")], [pdf_page()], writer)
    writer.save_crops(page, result)
    assert Image.open(tmp_path / "doc_images" / "1_0.jpg").size == (
        1,
        792 - 634,
    )  # the box reordered, and widened to one pixel at the edge


def test_finish_writes_markdown_and_json_and_leaves_no_partial_files(tmp_path):
    writer = DocumentWriter(tmp_path / "new", "report")
    record = record_of(results([FINISHED], [pdf_page()]))
    markdown_path, json_path = writer.finish(record, "# hi\n")
    assert markdown_path.read_text() == "# hi\n"
    assert json.loads(json_path.read_text()) == record
    assert sorted(path.name for path in (tmp_path / "new").iterdir()) == ["report.json", "report.md"]
