"""The demo's API client: the API's errors become sentences a person can act on."""

import httpx
import pytest

from dsocr.web.client import ApiClient, Problem, Upload, explain
from tests.support.triton_harness import free_ports


def answer(status: int, code: str, message: str, **headers) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message}, headers=headers)


def test_a_busy_server_says_when_to_try_again():
    problem = explain(answer(429, "overloaded", "64 pages in flight", **{"Retry-After": "7"}))
    assert problem.status == 429
    assert "Try again in 7 s" in problem.message and "64 pages in flight" in problem.message


def test_an_unavailable_server_says_so():
    problem = explain(answer(503, "triton_unavailable", "the Triton server is unreachable"))
    assert problem.message.startswith("The OCR server is unavailable right now")


def test_a_refused_file_keeps_the_apis_own_message_and_code():
    problem = explain(answer(415, "unsupported_type", "not a PDF, PNG, JPEG or TIFF"))
    assert (problem.code, problem.message) == ("unsupported_type", "not a PDF, PNG, JPEG or TIFF")


def test_an_answer_that_is_not_json_still_gives_a_message():
    problem = explain(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert problem.status == 502 and "Bad Gateway" in problem.message


def test_an_api_that_cannot_be_reached_is_a_problem_not_a_traceback():
    [port] = free_ports(1)
    client = ApiClient(f"http://127.0.0.1:{port}")
    with pytest.raises(Problem, match=f"Cannot reach the API at http://127.0.0.1:{port}"):
        client.read(Upload("a.png", b"x"), {}, lambda done, total: None)
    client.close()


def test_a_document_too_long_for_one_request_goes_in_as_a_job_followed_to_its_result():
    calls = []

    def api(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        if request.url.path == "/ocr/predict":
            return answer(422, "too_many_pages", "20 pages; /ocr/predict takes 16")
        if request.url.path == "/ocr/jobs":
            assert request.headers["Idempotency-Key"]
            return httpx.Response(202, json={"job_id": "j", "pages_total": 2, "pages_done": 0})
        if request.url.path == "/ocr/jobs/j/pages":
            return httpx.Response(200, text='{"index": 0}\n{"index": 1}\n')
        if request.url.path == "/ocr/jobs/j":
            return httpx.Response(200, json={"status": "succeeded"})
        return httpx.Response(200, json={"markdown": "done"})

    seen = []
    client = ApiClient("http://api", transport=httpx.MockTransport(api))
    result = client.read(Upload("long.pdf", b"%PDF"), {"mode": "tiny"}, lambda done, total: seen.append((done, total)))
    assert result == {"markdown": "done"}
    assert seen == [(0, 2), (1, 2), (2, 2)]
    assert calls[-1] == ("GET", "/ocr/jobs/j/result")
