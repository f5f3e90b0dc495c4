"""Health, metrics and the API key."""

import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dsocr.api.metrics import STAGES
from tests.support.api_harness import api_server, client, form, metric, settings
from tests.support.documents import save, shaded_pdf


@pytest.fixture(scope="module")
def api(triton_server, tmp_path_factory):
    with api_server(settings(triton_server.grpc_url, tmp_path_factory.mktemp("api"))) as url, client(url) as http:
        yield http


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ready_reports_a_recent_canary_page_through_the_ensemble(api):
    response = api.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] and "canary page decoded" in body["detail"]
    assert body["checked_seconds_ago"] < 10


def test_without_a_triton_server_the_api_is_live_not_ready_and_refuses_pages_at_once(tmp_path):
    with api_server(settings(f"127.0.0.1:{free_port()}", tmp_path)) as url, client(url) as http:
        assert http.get("/health/live").json() == {"status": "live"}
        ready = http.get("/health/ready")
        assert ready.status_code == 503 and not ready.json()["ready"]
        started = time.monotonic()
        response = http.post("/ocr/predict", files={"file": ("a.pdf", save(shaded_pdf(1)))}, data=form())
        assert (response.status_code, response.json()["code"]) == (503, "triton_unavailable")
        assert time.monotonic() - started < 1
        # Jobs are still taken: they wait in the store for the server.
        job = http.post("/ocr/jobs", files={"file": ("a.pdf", save(shaded_pdf(1)))}, data=form())
        assert (job.status_code, job.json()["status"]) == (202, "queued")


def test_metrics_count_requests_pages_stages_and_tokens_in_base_units(api):
    response = api.post("/ocr/predict", files={"file": ("a.pdf", save(shaded_pdf(2)))}, data=form())
    assert response.status_code == 200
    generated = sum(page["generated_tokens"] for page in response.json()["pages"])
    families = {family.name: family for family in text_string_to_metric_families(api.get("/metrics").text)}
    assert {
        "dsocr_api_requests",
        "dsocr_api_request_duration_seconds",
        "dsocr_api_pages",
        "dsocr_api_page_seconds",
        "dsocr_api_vision_tokens",
        "dsocr_api_generated_tokens",
        "dsocr_api_compression_ratio",
        "dsocr_api_in_flight_pages",
        "dsocr_api_job_queue_depth",
        "dsocr_api_triton_ready",
    } <= set(families)
    assert metric(api, "dsocr_api_requests_total", route="/ocr/predict", status="200", code="ok") >= 1
    assert metric(api, "dsocr_api_pages_total", source="predict") >= 2
    for stage in STAGES:
        assert metric(api, "dsocr_api_page_seconds_count", stage=stage) >= 2, stage
    assert metric(api, "dsocr_api_generated_tokens_total") >= generated
    assert metric(api, "dsocr_api_compression_ratio_count") >= 2
    assert metric(api, "dsocr_api_in_flight_pages") == 0
    assert metric(api, "dsocr_api_triton_ready") == 1


def test_metrics_carry_each_page_s_quality_signals_by_mode(api):
    before = metric(api, "dsocr_api_page_mean_logprob_count", mode="tiny")
    response = api.post("/ocr/predict", files={"file": ("a.pdf", save(shaded_pdf(2)))}, data=form())
    pages = response.json()["pages"]
    assert all(page["mean_logprob"] < 0 for page in pages)
    assert metric(api, "dsocr_api_page_mean_logprob_count", mode="tiny") == before + 2
    assert metric(api, "dsocr_api_page_vision_tokens_count", mode="tiny") >= 2
    assert metric(api, "dsocr_api_page_generated_tokens_sum", mode="tiny") >= sum(p["generated_tokens"] for p in pages)
    assert metric(api, "dsocr_api_compression_ratio_count", mode="tiny") >= 2
    # The random checkpoint runs every page to its token limit, and the pipeline retries each once.
    assert metric(api, "dsocr_api_page_finish_total", reason="length") >= 2
    assert metric(api, "dsocr_api_retried_pages_total") >= 2


def test_quality_and_canary_gauges_exist_from_start_up(api):
    families = {family.name for family in text_string_to_metric_families(api.get("/metrics").text)}
    for name in ("dsocr_canary_cer", "dsocr_canary_ned", "dsocr_canary_loop_rate", "dsocr_canary_last_run_ok"):
        assert name in families, name
    assert "dsocr_canary_last_success_timestamp_seconds" in families
    text = api.get("/metrics").text
    for signal in ("confidence", "loop_rate", "compression_ratio"):
        assert f'dsocr_quality_drift{{signal="{signal}"}}' in text
    assert "process_start_time_seconds" in families  # the canary alert's start-up grace needs it


def test_metric_labels_stay_bounded_whatever_the_paths_asked_for(api):
    for n in range(5):
        assert api.get(f"/no/such/path/{n}").json()["code"] == "not_found"
        assert api.get(f"/ocr/jobs/missing-{n}").status_code == 404
    samples = [
        sample.labels
        for family in text_string_to_metric_families(api.get("/metrics").text)
        if family.name == "dsocr_api_requests"
        for sample in family.samples
    ]
    routes = {labels["route"] for labels in samples}
    assert "unmatched" in routes and "/ocr/jobs/{job_id}" in routes
    assert not any("missing" in route or "no/such" in route for route in routes)


def test_an_api_key_when_set_is_required_on_the_ocr_routes_only(triton_server, tmp_path):
    key = "s3cret-key"
    with api_server(settings(triton_server.grpc_url, tmp_path, api_key=key)) as url, client(url) as http:
        files = {"file": ("empty.pdf", b"")}
        for headers in ({}, {"X-API-Key": "wrong"}):
            response = http.post("/ocr/predict", files=files, data=form(), headers=headers)
            assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
            assert http.get("/ocr/jobs/abc", headers=headers).status_code == 401
        # With the key the request gets through, to be refused for what it is: an empty file.
        response = http.post("/ocr/predict", files=files, data=form(), headers={"X-API-Key": key})
        assert (response.status_code, response.json()["code"]) == (422, "empty_file")
        assert http.get("/health/ready").status_code == 200
        assert http.get("/metrics").status_code == 200
        assert "APIKeyHeader" in http.get("/openapi.json").text
