"""Hostile and broken uploads: each gets its documented status and code within a deadline, while a normal
request sent at the same time still succeeds. No input gets a 500 or a stack trace."""

import threading
import time

import httpx
import pytest

from tests.support.api_harness import api_server, client, form, metric, settings
from tests.support.documents import (
    empty_file,
    encrypted_pdf,
    flate_bomb_pdf,
    html_named_pdf,
    pdf_with_20000_pages,
    png_of_20000_squared,
    png_with_garbage_after_its_signature,
    save,
    shaded_pdf,
    truncated_pdf,
    zero_page_pdf,
)

#: Every bad input is answered within this many seconds (the bomb is a page that runs out of memory rendering).
DEADLINE_S = 5.0
MAX_UPLOAD = 4 << 20


@pytest.fixture(scope="module")
def api(triton_server, tmp_path_factory):
    limits = {"max_upload_bytes": MAX_UPLOAD, "render_memory_bytes": 256 << 20}
    work_dir = tmp_path_factory.mktemp("api")
    with api_server(settings(triton_server.grpc_url, work_dir, **limits)) as url, client(url) as http:
        yield http


@pytest.fixture(scope="module")
def normal_traffic(api):
    """Normal one-page requests, one after another, for as long as the module's tests run; their statuses."""
    statuses, stop = [], threading.Event()

    def send() -> None:
        with client(str(api.base_url)) as http:
            while not stop.is_set():
                response = http.post("/ocr/predict", files={"file": ("ok.pdf", save(shaded_pdf(1)))}, data=form())
                statuses.append(response.status_code)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    yield statuses
    stop.set()
    sender.join(60)
    assert statuses and set(statuses) == {200}, statuses


def post(api: httpx.Client, name: str, data: bytes, **fields) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = api.post("/ocr/predict", files={"file": (name, data)}, data=form(**fields))
    return response, time.monotonic() - started


def huge_page_pdf() -> bytes:
    return save(shaded_pdf(1, size=(200_000, 100_000)))


def bomb_then_a_normal_page() -> bytes:
    return flate_bomb_pdf(inflated_mib=512)


def over_the_upload_limit() -> bytes:
    return save(shaded_pdf(1)) + b"%" * MAX_UPLOAD


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (empty_file, 422, "empty_file"),
        (html_named_pdf, 415, "unsupported_type"),
        (truncated_pdf, 422, "corrupt_pdf"),
        (encrypted_pdf, 422, "encrypted_pdf"),
        (zero_page_pdf, 422, "no_pages"),
        (pdf_with_20000_pages, 422, "too_many_pages"),
        (png_of_20000_squared, 422, "image_too_large"),
        (png_with_garbage_after_its_signature, 422, "corrupt_image"),
        (over_the_upload_limit, 413, "file_too_large"),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_a_bad_file_gets_its_status_and_code_quickly(api, normal_traffic, make, status, code):
    response, seconds = post(api, "document.pdf", make())
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert seconds < DEADLINE_S
    assert response.json()["message"]


def test_a_body_over_the_request_limit_is_refused_before_it_is_read(api, normal_traffic):
    response, seconds = post(api, "document.pdf", b"%PDF-" + b"0" * (3 * MAX_UPLOAD))
    assert (response.status_code, response.json()["code"]) == (413, "file_too_large")
    assert seconds < DEADLINE_S


def test_a_200000_point_page_is_rendered_at_a_lower_dpi(api, normal_traffic):
    response, seconds = post(api, "huge.pdf", huge_page_pdf())
    assert response.status_code == 200, response.text
    [page] = response.json()["pages"]
    assert (page["width_px"], page["height_px"], page["size_pt"]) == (4096, 2048, [200_000, 100_000])
    assert page["dpi"] == pytest.approx(4096 / 200_000 * 72)
    assert seconds < DEADLINE_S


def test_a_compression_bomb_fails_its_page_and_the_next_page_is_recognised(api, normal_traffic):
    response, seconds = post(api, "bomb.pdf", bomb_then_a_normal_page())
    assert response.status_code == 200, response.text
    bomb, after = response.json()["pages"]
    assert (bomb["status"], bomb["error"]["code"]) == ("failed", "render_memory")
    assert after["status"] != "failed" and after["generated_tokens"] > 0
    assert seconds < DEADLINE_S


def test_a_document_whose_only_page_cannot_be_rendered_is_unprocessable(api, normal_traffic):
    response, seconds = post(api, "bomb.pdf", bomb_then_a_normal_page(), pages="1")
    assert (response.status_code, response.json()["code"]) == (422, "render_memory"), response.text
    assert seconds < DEADLINE_S


def test_a_page_range_past_the_end_is_refused(api, normal_traffic):
    response, _ = post(api, "report.pdf", save(shaded_pdf(2)), pages="2-5")
    assert (response.status_code, response.json()["code"]) == (422, "bad_page_range")


@pytest.mark.parametrize("kind", ["files", "fields"])
def test_thousands_of_multipart_parts_are_refused(api, normal_traffic, kind):
    parts = [("file", (f"part{n}.pdf", b"%PDF-")) for n in range(5000)]
    started = time.monotonic()
    if kind == "files":
        response = api.post("/ocr/predict", files=parts)
    else:
        response = api.post("/ocr/predict", files=parts[:1], data={f"field{n}": "x" for n in range(5000)})
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request"), response.text
    assert time.monotonic() - started < DEADLINE_S


def test_a_request_without_a_file_names_what_is_missing(api, normal_traffic):
    response = api.post("/ocr/predict", data=form())
    assert (response.status_code, response.json()["code"]) == (422, "invalid_parameters")
    assert "file" in response.json()["message"]


def test_no_answer_was_a_server_error(api, normal_traffic):
    assert metric(api, "dsocr_api_requests_total", status="500") == 0
    assert metric(api, "dsocr_api_requests_total", route="/ocr/predict", status="200") > 0
