"""The API protects the server: past its capacity it answers 429 at once, and while the Triton server is down
503 at once; when the server comes back, so does the API."""

import threading
import time

import pytest

from dsocr.triton.server import TritonServer
from tests.support.api_harness import api_server, client, form, metric, settings
from tests.support.documents import save, shaded_pdf
from tests.support.triton_harness import EXIT_TIMEOUT_S, eventually, tiny_server

#: A page that decodes for a second or more: the random tiny model goes on to max_new_tokens.
SLOW = form(max_new_tokens=600, dpi=36)


def predict(http, pages: int = 1, fields: dict | None = None):
    return http.post("/ocr/predict", files={"file": ("doc.pdf", save(shaded_pdf(pages)))}, data=fields or form(dpi=36))


def test_requests_past_the_capacity_get_429_with_retry_after_at_once(triton_server, tmp_path):
    with (
        api_server(settings(triton_server.grpc_url, tmp_path, max_in_flight_pages=2)) as url,
        client(url) as http,
    ):

        def slow_request() -> None:
            with client(url) as other:
                predict(other, pages=2, fields=SLOW)

        slow = threading.Thread(target=slow_request)
        slow.start()
        assert eventually(lambda: metric(http, "dsocr_api_in_flight_pages") == 2, within_s=10)
        started = time.monotonic()
        response = predict(http)
        assert time.monotonic() - started < 1
        assert (response.status_code, response.json()["code"]) == (429, "overloaded")
        assert int(response.headers["retry-after"]) >= 1
        slow.join(60)
        assert predict(http).status_code == 200  # capacity freed


def test_jobs_past_the_queue_limit_get_429(triton_server, tmp_path):
    with (
        api_server(settings(triton_server.grpc_url, tmp_path, max_queued_jobs=1)) as url,
        client(url) as http,
    ):
        files = {"file": ("doc.pdf", save(shaded_pdf(4)))}
        first = http.post("/ocr/jobs", files=files, data=SLOW)
        assert first.status_code == 202
        refused = http.post("/ocr/jobs", files=files, data=SLOW)
        assert (refused.status_code, refused.json()["code"]) == (429, "job_queue_full")
        assert "retry-after" in refused.headers
        http.delete(f"/ocr/jobs/{first.json()['job_id']}")


@pytest.fixture
def own_triton(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    """A Triton server of this test's own, to stop and start again."""
    with tiny_server(tiny_checkpoint, tiny_onnx_exports, tmp_path / "triton") as server:
        yield server


def test_with_triton_stopped_predict_answers_503_within_5s_and_recovers_when_it_returns(own_triton, tmp_path):
    with api_server(settings(own_triton.grpc_url, tmp_path)) as url, client(url) as http:
        assert predict(http).status_code == 200
        own_triton.stop()

        for _ in range(3):  # the first finds the server gone; the next are refused without trying
            started = time.monotonic()
            response = predict(http)
            assert (response.status_code, response.json()["code"]) == (503, "triton_unavailable"), response.text
            assert time.monotonic() - started < 5
            assert "retry-after" in response.headers
        assert http.get("/health/ready").status_code == 503
        assert http.get("/health/live").status_code == 200

        ports = own_triton.ports
        again = TritonServer(
            own_triton.repository,
            http_port=ports["http"],
            grpc_port=ports["grpc"],
            metrics_port=ports["metrics"],
            log_path=tmp_path / "triton-again.log",
            exit_timeout_s=EXIT_TIMEOUT_S,
        )
        with again:
            back = time.monotonic()
            assert eventually(lambda: http.get("/health/ready").status_code == 200, within_s=10)
            assert predict(http).status_code == 200
            assert time.monotonic() - back < 10
