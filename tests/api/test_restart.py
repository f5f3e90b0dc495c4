"""Durable jobs: the API process is SIGKILLed in the middle of a job, a new one starts on the same SQLite file,
and the job completes with every page recorded exactly once."""

import json
import sqlite3

from tests.support.api_harness import ApiProcess, client, form
from tests.support.documents import save, shaded_pdf
from tests.support.triton_harness import eventually, metric

PAGES = 30
WINDOW = 4  # job_page_concurrency: at most this many pages are in flight when the process dies
#: One canary page when each process starts, none after (so that Triton's request count is the job's).
QUIET = {"DSOCR_API_HEALTH_INTERVAL_S": "3600", "DSOCR_API_JOB_PAGE_CONCURRENCY": str(WINDOW)}


def ensemble_requests(triton_server) -> float:
    return metric(triton_server, "nv_inference_request_success", model="deepseek_ocr")


def recorded_pages(jobs_db, job_id: str) -> list[tuple[int, str]]:
    """(page index, the process that recorded it) of every page result in the file."""
    with sqlite3.connect(jobs_db) as db:
        return db.execute("SELECT page_index, recorded_by FROM pages WHERE job_id = ?", (job_id,)).fetchall()


def test_a_job_survives_the_api_being_killed_and_every_page_is_recorded_exactly_once(triton_server, tmp_path):
    jobs_db = tmp_path / "jobs.sqlite3"
    requests_before = ensemble_requests(triton_server)
    first = ApiProcess(triton_server.grpc_url, jobs_db, tmp_path / "api-1.log", env=QUIET)
    try:
        with client(first.url) as http:
            response = http.post(
                "/ocr/jobs", files={"file": ("long.pdf", save(shaded_pdf(PAGES)))}, data=form(dpi=36, max_new_tokens=40)
            )
            job_id = response.json()["job_id"]
            assert eventually(lambda: http.get(f"/ocr/jobs/{job_id}").json()["pages_done"] >= 5, within_s=60)
        first.kill()
    finally:
        first.stop()
    before_kill = recorded_pages(jobs_db, job_id)
    assert 5 <= len(before_kill) < PAGES, "the job was not in the middle when the API was killed"

    second = ApiProcess(triton_server.grpc_url, jobs_db, tmp_path / "api-2.log", env=QUIET)
    try:
        with client(second.url) as http:
            assert eventually(lambda: http.get(f"/ocr/jobs/{job_id}").json()["status"] == "succeeded", within_s=120)
            result = http.get(f"/ocr/jobs/{job_id}/result").json()
            with http.stream("GET", f"/ocr/jobs/{job_id}/pages") as stream:
                streamed = [json.loads(line)["index"] for line in stream.iter_lines() if line]
    finally:
        second.stop()

    after = recorded_pages(jobs_db, job_id)
    assert sorted(index for index, _ in after) == list(range(PAGES))  # none lost, none twice
    assert set(before_kill) <= set(after)  # the pages done before the kill were kept, not done again
    assert len({process for _, process in after}) == 2
    assert [page["index"] for page in result["pages"]] == list(range(PAGES))
    assert sorted(streamed) == list(range(PAGES))
    # The server saw each page's attempts once, plus at most the pages in flight at the kill again, plus the two
    # processes' start-up canary pages.
    attempts = sum(page["attempts"] for page in result["pages"])
    redone = ensemble_requests(triton_server) - requests_before - attempts - 2
    assert 0 <= redone <= WINDOW * 2
