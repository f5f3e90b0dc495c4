"""The job store on a real SQLite file, and the page records it keeps."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dsocr.api.pages import DonePage
from dsocr.api.results import done_page, page_json
from dsocr.api.settings import Settings
from dsocr.api.store import IdempotencyConflict, JobStore, NewJob, QueueFull, StoreLocked, stored_options
from dsocr.api.worker import page_ranges
from dsocr.contract import OcrOptions
from dsocr.documents.pages import PageImage
from dsocr.documents.pipeline import ocr_page, official_image_link
from tests.support.scripted import GROUNDED_PAGE, ScriptedRecognizer


def new_job(key: str | None = None, sha256: str = "a" * 64, pages: int = 3) -> NewJob:
    return NewJob(
        file_name="report.pdf",
        file_sha256=sha256,
        size_bytes=1234,
        kind="pdf",
        page_count=pages,
        page_indices=list(range(pages)),
        options=stored_options(OcrOptions(mode="tiny"), 144, "both"),
        webhook_url=None,
        idempotency_key=key,
    )


@pytest.fixture
def store(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    yield store
    store.close()


def test_a_second_store_on_the_same_file_is_refused_while_the_first_is_open(store):
    with pytest.raises(StoreLocked, match="in use by another dsocr API process"):
        JobStore(store.path)


def test_dsocr_api_on_a_database_another_process_holds_exits_with_one_line(store):
    result = subprocess.run(
        [sys.executable, "-m", "dsocr.cli", "api", "--jobs-db", str(store.path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"dsocr api: error: {store.path} is in use by another dsocr API process (pid in {store.path}.lock)"
    )


def test_the_lock_goes_with_a_process_that_is_killed(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from dsocr.api.store import JobStore; JobStore({str(path)!r}); input()"],
        stdin=subprocess.PIPE,
    )
    try:
        while not path.exists():
            assert holder.poll() is None
        with pytest.raises(StoreLocked):
            JobStore(path)
    finally:
        holder.kill()
        holder.wait()
    JobStore(path).close()


def test_jobs_left_running_by_a_dead_process_are_queued_again(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    first = JobStore(path)
    job, _ = first.create(new_job(), b"%PDF-", max_unfinished=10)
    assert first.claim_next().id == job.id
    first.close()
    second = JobStore(path)
    assert second.requeue_running() == 1
    assert second.claim_next().id == job.id
    second.close()


def test_a_page_is_recorded_once_and_only_while_its_job_runs(store):
    job, _ = store.create(new_job(), b"%PDF-", max_unfinished=10)
    assert not store.add_page(job.id, 0, False, {"index": 0})  # queued, not running
    store.claim_next()
    assert store.add_page(job.id, 0, False, {"index": 0})
    assert not store.add_page(job.id, 0, True, {"index": 0, "again": True})
    assert store.pages(job.id) == [{"index": 0}]
    store.finish(job.id, "cancelled")
    assert not store.add_page(job.id, 1, False, {"index": 1})
    assert store.get(job.id).pages_done == 1


def test_an_idempotency_key_returns_its_job_for_the_same_request_and_refuses_another(store):
    first, created = store.create(new_job("key-1"), b"%PDF-", max_unfinished=10)
    again, created_again = store.create(new_job("key-1"), b"%PDF-", max_unfinished=10)
    assert (created, created_again, again.id) == (True, False, first.id)
    with pytest.raises(IdempotencyConflict):
        store.create(new_job("key-1", sha256="b" * 64), b"%PDF-", max_unfinished=10)


def test_the_queue_refuses_jobs_beyond_its_limit(store):
    store.create(new_job(), b"%PDF-", max_unfinished=1)
    with pytest.raises(QueueFull):
        store.create(new_job(), b"%PDF-", max_unfinished=1)


def test_a_finished_job_drops_its_upload_and_is_purged_after_its_retention(store):
    job, _ = store.create(new_job(), b"%PDF-", max_unfinished=10)
    store.claim_next()
    assert store.finish(job.id, "succeeded")
    assert not store.finish(job.id, "cancelled")
    with pytest.raises(KeyError):
        store.upload(job.id)
    assert store.purge(finished_before=0) == 0
    assert store.purge(finished_before=store.get(job.id).finished_at + 1) == 1
    assert store.get(job.id) is None


def test_a_stored_page_reads_back_as_the_page_the_pipeline_made():
    page = PageImage(
        index=4, image=Image.new("RGB", (1224, 1584)), dpi=144, size_pt=(612, 792), box_pt=(0, 0, 612, 792)
    )
    recognizer = ScriptedRecognizer([(GROUNDED_PAGE, "eos")])
    result = ocr_page(recognizer, page, OcrOptions(), official_image_link)
    assert len(result.blocks) == 5  # boxes in bins, pixels and points; a figure; a two-box equation
    record = page_json(DonePage(result, latency_s=0.25))
    assert page_json(done_page(record)) == record
    assert done_page(record).result == result


@pytest.mark.parametrize(
    ("indices", "text"), [([0], "1"), ([0, 1, 2, 6], "1-3,7"), ([9, 3, 4], "4-5,10"), ([0, 2, 4], "1,3,5")]
)
def test_pages_left_to_do_are_written_as_page_ranges(indices, text):
    assert page_ranges(indices) == text


def test_the_default_jobs_database_lives_in_the_users_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert Settings().jobs_db == tmp_path / "state" / "dsocr" / "jobs.sqlite3"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert Settings().jobs_db == Path.home() / ".local" / "state" / "dsocr" / "jobs.sqlite3"
