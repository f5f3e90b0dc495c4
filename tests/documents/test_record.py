"""The output record has one description, the pydantic models; the committed JSON Schema is generated from them."""

import jsonschema
import pytest
from pydantic import ValidationError

from dsocr.contract import OcrOptions
from dsocr.documents.pipeline import ocr_page, official_image_link
from dsocr.documents.record import SCHEMA_PATH, PageRecord, json_schema, page_record, schema_text
from tests.support.scripted import FINISHED, GROUNDED_PAGE, ScriptedRecognizer, pdf_page


def grounded_result():
    return ocr_page(ScriptedRecognizer([(GROUNDED_PAGE, "eos")]), pdf_page(), OcrOptions(), official_image_link)


def test_the_committed_schema_is_the_one_the_models_generate():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "dsocr/schemas/document.schema.json is out of date: run `python -m dsocr.documents.record --write`"
    )


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_pixel_counts_stay_integers_in_the_json():
    record = page_record(grounded_result()).model_dump(mode="json")
    assert all(isinstance(value, int) for value in record["blocks"][0]["bbox"]["px"])


def test_a_record_with_a_field_the_schema_lacks_is_refused():
    record = page_record(ocr_page(ScriptedRecognizer([FINISHED]), pdf_page(), OcrOptions(), official_image_link))
    with pytest.raises(ValidationError, match="Extra inputs"):
        PageRecord.model_validate({**record.model_dump(), "confidence": 0.9})
