"""``/ocr/jobs`` against the live Triton server: progress, the page stream, results, idempotency, cancellation
and webhooks."""

import http.server
import json
import threading
import time

import pytest

from tests.support.api_harness import api_server, client, form, settings
from tests.support.documents import save, shaded_pdf
from tests.support.triton_harness import eventually, metric, running_pages

#: Pages that decode for seconds each: the random tiny model goes on to max_new_tokens.
LONG_PAGES = form(max_new_tokens=1500, dpi=36)


@pytest.fixture(scope="module")
def api(triton_server, tmp_path_factory):
    options = {"job_page_concurrency": 4}
    with api_server(settings(triton_server.grpc_url, tmp_path_factory.mktemp("api"), **options)) as url:
        with client(url) as http:
            yield http


def submit(api, data: bytes, fields: dict | None = None, **options) -> dict:
    response = api.post("/ocr/jobs", files={"file": ("document.pdf", data)}, data=fields or form(dpi=36), **options)
    assert response.status_code == 202, response.text
    return response.json()


def wait_until_finished(api, job_id: str, within_s: float = 120) -> list[dict]:
    """The job's states, polled until it finishes."""
    states, deadline = [], time.monotonic() + within_s
    while not states or states[-1]["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, states[-1]
        states.append(api.get(f"/ocr/jobs/{job_id}").json())
        time.sleep(0.1)
    return states


def stream(api, job_id: str) -> list[dict]:
    with api.stream("GET", f"/ocr/jobs/{job_id}/pages") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/jsonl")
        return [json.loads(line) for line in response.iter_lines() if line]


@pytest.fixture(scope="module")
def fifty_pages(api) -> tuple[dict, list[dict]]:
    """A 50-page job, polled from submission to the end."""
    job = submit(api, save(shaded_pdf(50)))
    return job, wait_until_finished(api, job["job_id"])


def test_a_50_page_job_completes_reporting_its_progress(fifty_pages):
    job, states = fifty_pages
    assert (job["status"], job["pages_total"], job["pages_done"]) == ("queued", 50, 0)
    done = [state["pages_done"] for state in states]
    assert done == sorted(done), "progress went backwards"
    assert any(0 < count < 50 for count in done), "no progress was seen between start and end"
    assert (states[-1]["status"], states[-1]["pages_done"], states[-1]["pages_failed"]) == ("succeeded", 50, 0)
    assert states[-1]["started"] and states[-1]["finished"]


def test_a_finished_job_has_every_page_once_in_its_result(api, fifty_pages):
    job, _ = fifty_pages
    result = api.get(f"/ocr/jobs/{job['job_id']}/result").json()
    assert [page["index"] for page in result["pages"]] == list(range(50))
    assert result["summary"]["pages"] == 50 and result["document"]["pages"] == list(range(1, 51))
    assert result["markdown"].count("<--- Page Split --->") == 49


def test_the_result_can_be_asked_for_as_markdown_only(api, fifty_pages):
    job, _ = fifty_pages
    result = api.get(f"/ocr/jobs/{job['job_id']}/result", params={"output": "markdown"}).json()
    assert "pages" not in result and result["markdown"]


def test_the_page_stream_of_a_finished_job_gives_each_page_once(api, fifty_pages):
    job, _ = fifty_pages
    pages = stream(api, job["job_id"])
    assert sorted(page["index"] for page in pages) == list(range(50))


def test_the_page_stream_delivers_pages_while_the_job_runs(api):
    job = submit(api, save(shaded_pdf(12)), form(dpi=36, max_new_tokens=60))
    arrivals = []
    with api.stream("GET", f"/ocr/jobs/{job['job_id']}/pages") as response:
        for line in response.iter_lines():
            if line:
                state = api.get(f"/ocr/jobs/{job['job_id']}").json()["status"]
                arrivals.append((json.loads(line)["index"], state))
    assert sorted(index for index, _ in arrivals) == list(range(12))
    assert arrivals[0][1] == "running", "the first page came only when the job had finished"


def test_the_same_idempotency_key_and_file_return_the_same_job(api):
    data, key = save(shaded_pdf(2)), {"Idempotency-Key": "report-2026-11-26"}
    first = api.post("/ocr/jobs", files={"file": ("a.pdf", data)}, data=form(dpi=36), headers=key)
    again = api.post("/ocr/jobs", files={"file": ("a.pdf", data)}, data=form(dpi=36), headers=key)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    other = api.post("/ocr/jobs", files={"file": ("b.pdf", save(shaded_pdf(3)))}, data=form(dpi=36), headers=key)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")


def test_a_job_has_no_result_until_it_has_finished(api):
    job = submit(api, save(shaded_pdf(4)), LONG_PAGES)
    response = api.get(f"/ocr/jobs/{job['job_id']}/result")
    assert (response.status_code, response.json()["code"]) == (409, "job_not_finished")
    api.delete(f"/ocr/jobs/{job['job_id']}")
    response = api.get(f"/ocr/jobs/{job['job_id']}/result")
    assert (response.status_code, response.json()["code"]) == (409, "job_cancelled")


def test_cancelling_a_running_job_stops_it_sending_pages(api, triton_server):
    tokens_before = metric(triton_server, "dsocr_decode_generated_tokens_total")
    job = submit(api, save(shaded_pdf(20)), LONG_PAGES)
    assert eventually(lambda: running_pages(triton_server) >= 2, within_s=30), "the job's pages never ran"
    response = api.delete(f"/ocr/jobs/{job['job_id']}")
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    # Triton 2.51 does not pass the cancelled streams on to a decode step already running: the pages in flight
    # finish there, and no other page of the job is sent.
    assert eventually(lambda: running_pages(triton_server) == 0, within_s=60)
    in_flight = 4  # job_page_concurrency
    assert metric(triton_server, "dsocr_decode_generated_tokens_total") - tokens_before <= in_flight * 1500 + 100
    assert api.get(f"/ocr/jobs/{job['job_id']}").json() == response.json()
    again = api.delete(f"/ocr/jobs/{job['job_id']}")
    assert (again.status_code, again.json()["code"]) == (409, "job_finished")


def test_the_webhook_is_called_once_the_job_has_finished(api):
    calls = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver) as receiver:
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/dsocr"
        job = submit(api, save(shaded_pdf(2)), form(dpi=36, webhook_url=url))
        assert eventually(lambda: calls, within_s=60), "the webhook was never called"
        receiver.shutdown()
    [call] = calls
    assert (call["job_id"], call["status"], call["pages_done"]) == (job["job_id"], "succeeded", 2)


def test_an_unknown_job_is_not_found(api):
    for method, path in [("GET", ""), ("GET", "/result"), ("GET", "/pages"), ("DELETE", "")]:
        response = api.request(method, f"/ocr/jobs/0123456789abcdef{path}")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
