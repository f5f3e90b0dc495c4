"""``POST /ocr/predict`` against the live Triton server: the same pages as the client path, in the published
record, trimmed as ``output`` asks."""

import io
import json

import jsonschema
import pytest
from PIL import Image

from dsocr.client import OcrClient
from dsocr.contract import OcrOptions
from dsocr.documents.output import document_markdown
from dsocr.documents.pipeline import ocr_pages
from dsocr.documents.record import SCHEMA_PATH, page_record
from dsocr.documents.rendering import RenderPool
from tests.support.api_harness import api_server, client, form, settings
from tests.support.documents import report_pdf

OPTIONS = OcrOptions(mode="tiny", max_new_tokens=8)


@pytest.fixture(scope="module")
def api(triton_server, tmp_path_factory):
    with api_server(settings(triton_server.grpc_url, tmp_path_factory.mktemp("api"))) as url, client(url) as http:
        yield http


@pytest.fixture(scope="module")
def report(api) -> dict:
    """The 3-page report through /ocr/predict, everything asked for."""
    response = api.post("/ocr/predict", files={"file": ("report.pdf", report_pdf())}, data=form(output="both"))
    assert response.status_code == 200, response.text
    return response.json()


def without_timings(page: dict) -> dict:
    return {key: value for key, value in page.items() if key not in ("timings", "latency_ms")}


def test_a_multi_page_pdf_gives_per_page_results_equal_to_the_client_path(triton_server, report):
    with OcrClient(triton_server.grpc_url) as recognizer, RenderPool(workers=1) as pool:
        with pool.open(report_pdf()) as document:
            expected = [result for _, result in ocr_pages(recognizer, document, OPTIONS, concurrency=3)]
    assert [without_timings(page) for page in report["pages"]] == [
        without_timings(page_record(result).model_dump(mode="json")) for result in expected
    ]
    assert report["markdown"] == document_markdown(expected)
    assert report["document"]["pages"] == [1, 2, 3] and report["summary"]["pages"] == 3


def test_the_result_is_the_published_document_record_plus_markdown_and_page_latency(report):
    schema = json.loads(SCHEMA_PATH.read_text())
    record = {key: value for key, value in report.items() if key != "markdown"}
    record["pages"] = [{key: value for key, value in page.items() if key != "latency_ms"} for page in report["pages"]]
    jsonschema.validate(record, schema)
    assert all(page["latency_ms"] >= 1000 * page["timings"]["recognize_seconds"] for page in report["pages"])


def test_pages_carry_their_size_and_dpi_so_boxes_can_be_mapped(report):
    first = report["pages"][0]
    assert (first["width_px"], first["height_px"], first["dpi"], first["size_pt"]) == (1224, 1584, 144.0, [612, 792])
    assert first["box_pt"] == [0, 0, 612, 792]


@pytest.mark.parametrize(("output", "has_markdown", "has_pages"), [("markdown", True, False), ("json", False, True)])
def test_output_leaves_out_what_was_not_asked_for(api, output, has_markdown, has_pages):
    response = api.post(
        "/ocr/predict", files={"file": ("report.pdf", report_pdf())}, data=form(output=output, pages="1")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert ("markdown" in body, "pages" in body) == (has_markdown, has_pages)
    assert body["summary"]["pages"] == 1


def test_a_page_range_selects_the_pages_processed(api):
    response = api.post("/ocr/predict", files={"file": ("report.pdf", report_pdf())}, data=form(pages="2-3"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["document"]["pages"] == [2, 3]
    assert [page["index"] for page in body["pages"]] == [1, 2]


def test_an_image_is_one_page_without_pdf_geometry(api):
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), "white").save(buffer, "PNG")
    response = api.post("/ocr/predict", files={"file": ("scan.png", buffer.getvalue())}, data=form())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["document"]["type"] == "png"
    [page] = body["pages"]
    assert (page["width_px"], page["height_px"], page["dpi"], page["size_pt"]) == (640, 480, None, None)


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"prompt": "locate"}, "needs ref"),
        ({"ref": "Total"}, "only used by the 'locate' prompt"),
        ({"mode": "huge"}, "mode"),
        ({"max_new_tokens": "100000"}, "at most 8192"),
        ({"dpi": "0"}, "dpi"),
        ({"output": "pdf"}, "output"),
    ],
)
def test_invalid_parameters_are_refused_before_any_page_is_rendered(api, fields, complaint):
    response = api.post("/ocr/predict", files={"file": ("report.pdf", report_pdf())}, data=form(**fields))
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_parameters"
    assert complaint in response.json()["message"]
