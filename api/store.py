"""Jobs and their page results, durable in one SQLite file.

A job row holds everything needed to run it again from the start (the options, the selected pages, the upload
in its own table); each page result is committed on its own as it finishes, so a crash loses at most the
pages in flight, which run again. A page has at most one result (``UNIQUE (job_id, page_index)``; the first
stays), and a result is only recorded while its job is running, so a cancelled job gains no pages.

One API process owns a database: it holds an exclusive lock on ``<file>.lock`` while it runs (released by the
kernel however the process ends), so jobs found ``running`` at start-up were left by a process that is gone,
and are queued again. Methods block; the API calls them in threads. One connection, behind a lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from dsocr.contract import OcrOptions
from dsocr.documents.output import DocumentInfo

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    not_before REAL NOT NULL DEFAULT 0,     -- a job waiting out a server outage is not run before this
    idempotency_key TEXT UNIQUE,
    fingerprint TEXT NOT NULL,              -- the upload's hash with the options: what a key must match
    file_name TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    kind TEXT NOT NULL,
    page_count INTEGER NOT NULL,
    page_indices TEXT NOT NULL,             -- JSON list of 0-based pages, ascending
    options TEXT NOT NULL,                  -- JSON: OcrOptions fields, dpi, output
    model TEXT,                             -- JSON lineage of the server's checkpoint, when first run
    webhook_url TEXT,
    webhook_state TEXT CHECK (webhook_state IN ('pending', 'delivered', 'failed')),
    webhook_attempts INTEGER NOT NULL DEFAULT 0,
    webhook_not_before REAL NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS uploads (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS pages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- completion order, for streams
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    page_index INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    record TEXT NOT NULL,                   -- the page's JSON as the API returns it
    recorded_by TEXT NOT NULL,              -- the API process that recorded it
    UNIQUE (job_id, page_index)
);
"""
UNFINISHED = ("queued", "running")
_JOB_COLUMNS = """
    id, status, created_at, started_at, finished_at, file_name, file_sha256, size_bytes, kind, page_count,
    page_indices, options, model, webhook_url, webhook_attempts, error_code, error_message,
    (SELECT COUNT(*) FROM pages WHERE pages.job_id = jobs.id) AS pages_done,
    (SELECT COUNT(*) FROM pages WHERE pages.job_id = jobs.id AND failed) AS pages_failed
"""


class StoreLocked(RuntimeError):
    """Another process owns the job database."""


class IdempotencyConflict(ValueError):
    """An Idempotency-Key already names a job for another file or other options."""


class QueueFull(RuntimeError):
    pass


def stored_options(options: OcrOptions, dpi: float, output: str) -> dict:
    """How a job keeps its options (``JobRow.ocr_options``, ``.dpi`` and ``.output`` read them back)."""
    return {"ocr": options.model_dump(), "dpi": dpi, "output": output}


@dataclass(frozen=True)
class NewJob:
    file_name: str
    file_sha256: str
    size_bytes: int
    kind: str
    page_count: int
    page_indices: list[int]
    options: dict
    webhook_url: str | None
    idempotency_key: str | None

    @property
    def fingerprint(self) -> str:
        return json.dumps([self.file_sha256, self.page_indices, self.options, self.webhook_url], sort_keys=True)


@dataclass(frozen=True)
class JobRow:
    id: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    file_name: str
    file_sha256: str
    size_bytes: int
    kind: str
    page_count: int
    page_indices: list[int]
    options: dict
    model: dict | None
    webhook_url: str | None
    webhook_attempts: int
    error_code: str | None
    error_message: str | None
    pages_done: int
    pages_failed: int

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED

    @property
    def ocr_options(self) -> OcrOptions:
        options = dict(self.options["ocr"])
        if "retry_ngram" in options:  # a job stored before the options became dsocr.contract.OcrOptions
            options["retry"] = options.pop("retry_ngram") is not None
        return OcrOptions(**options)

    @property
    def dpi(self) -> float:
        return self.options["dpi"]

    @property
    def output(self) -> str:
        return self.options["output"]

    @property
    def document(self) -> DocumentInfo:
        return DocumentInfo(
            self.file_name, self.file_sha256, self.size_bytes, self.kind, self.page_count, self.page_indices
        )

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRow:
        values = dict(row)
        for key in ("page_indices", "options", "model"):
            values[key] = json.loads(values[key]) if values[key] is not None else None
        return cls(**values)


class JobStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.process_id = uuid.uuid4().hex  # names this process in the pages it records
        self._lock_file = _lock(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        # WAL: readers do not block the writer. synchronous=FULL: a committed page survives a power cut too.
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON"):
            self._db.execute(f"PRAGMA {pragma}")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"{self.path}: job database schema {version}, this API knows {SCHEMA_VERSION}")
        self._db.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._lock_file.close()

    # --- jobs ---------------------------------------------------------------------------------------------

    def create(self, job: NewJob, data: bytes, max_unfinished: int) -> tuple[JobRow, bool]:
        """Queue ``job``; returns it and True, or the job its idempotency key already names and False."""
        with self._transaction() as db:
            if job.idempotency_key is not None:
                found = db.execute(
                    "SELECT id, fingerprint FROM jobs WHERE idempotency_key = ?", (job.idempotency_key,)
                ).fetchone()
                if found is not None:
                    if found["fingerprint"] != job.fingerprint:
                        raise IdempotencyConflict(
                            "this Idempotency-Key was used for another file or other options (job "
                            f"{found['id']}); use a new key for a new job"
                        )
                    return self._get(db, found["id"]), False
            unfinished = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
            if unfinished >= max_unfinished:
                raise QueueFull(f"{unfinished} jobs are queued or running, the most this server keeps")
            job_id = uuid.uuid4().hex
            db.execute(
                """INSERT INTO jobs (id, status, created_at, idempotency_key, fingerprint, file_name, file_sha256,
                       size_bytes, kind, page_count, page_indices, options, webhook_url)
                   VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    job_id,
                    time.time(),
                    job.idempotency_key,
                    job.fingerprint,
                    job.file_name,
                    job.file_sha256,
                    job.size_bytes,
                    job.kind,
                    job.page_count,
                    json.dumps(job.page_indices),
                    json.dumps(job.options),
                    job.webhook_url,
                ),
            )
            db.execute("INSERT INTO uploads (job_id, data) VALUES (?, ?)", (job_id, data))
            return self._get(db, job_id), True

    def get(self, job_id: str) -> JobRow | None:
        with self._lock:
            return self._get(self._db, job_id)

    def claim_next(self) -> JobRow | None:
        """The oldest queued job that may run now, marked running; None if there is none."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' AND not_before <= ? ORDER BY created_at LIMIT 1",
                (time.time(),),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?) WHERE id = ?",
                (time.time(), row["id"]),
            )
            return self._get(db, row["id"])

    def requeue_running(self) -> int:
        """At start-up: jobs a previous process was running go back to the queue, to continue where they were."""
        with self._transaction() as db:
            return db.execute("UPDATE jobs SET status = 'queued' WHERE status = 'running'").rowcount

    def defer(self, job_id: str, seconds: float, code: str, message: str) -> None:
        """A running job that cannot go on now (the server is unreachable) is queued again for later."""
        with self._transaction() as db:
            db.execute(
                """UPDATE jobs SET status = 'queued', not_before = ?, error_code = ?, error_message = ?
                   WHERE id = ? AND status = 'running'""",
                (time.time() + seconds, code, message, job_id),
            )

    def set_model(self, job_id: str, model: dict) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET model = ? WHERE id = ? AND model IS NULL", (json.dumps(model), job_id))

    def finish(self, job_id: str, status: str, code: str | None = None, message: str | None = None) -> bool:
        """Move an unfinished job to ``status``; the upload is no longer needed. False if it had finished."""
        with self._transaction() as db:
            updated = db.execute(
                f"""UPDATE jobs SET status = ?, finished_at = ?, error_code = ?, error_message = ?,
                       webhook_state = CASE WHEN webhook_url IS NULL THEN NULL ELSE 'pending' END
                   WHERE id = ? AND status IN {UNFINISHED}""",
                (status, time.time(), code, message, job_id),
            ).rowcount
            if updated:
                db.execute("DELETE FROM uploads WHERE job_id = ?", (job_id,))
            return bool(updated)

    def unfinished_count(self) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE status IN {UNFINISHED}").fetchone()[0]

    def purge(self, finished_before: float) -> int:
        """Delete jobs (pages included) that finished before ``finished_before``."""
        with self._transaction() as db:
            return db.execute(
                f"DELETE FROM jobs WHERE status NOT IN {UNFINISHED} AND finished_at < ?", (finished_before,)
            ).rowcount

    def upload(self, job_id: str) -> bytes:
        with self._lock:
            row = self._db.execute("SELECT data FROM uploads WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"job {job_id} has no upload")
        return row["data"]

    # --- pages --------------------------------------------------------------------------------------------

    def add_page(self, job_id: str, page_index: int, failed: bool, record: dict) -> bool:
        """Record a page's result if its job is running and the page has none yet; False if not recorded.

        A second result for a page can only come from a run that was abandoned (an outage) while its page was
        being recorded: the first one stays.
        """
        with self._transaction() as db:
            return bool(
                db.execute(
                    """INSERT INTO pages (job_id, page_index, failed, record, recorded_by)
                       SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ? AND status = 'running')
                       ON CONFLICT (job_id, page_index) DO NOTHING""",
                    (job_id, page_index, failed, json.dumps(record), self.process_id, job_id),
                ).rowcount
            )

    def done_pages(self, job_id: str) -> set[int]:
        with self._lock:
            rows = self._db.execute("SELECT page_index FROM pages WHERE job_id = ?", (job_id,)).fetchall()
        return {row["page_index"] for row in rows}

    def pages(self, job_id: str) -> list[dict]:
        """The job's page results in page order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM pages WHERE job_id = ? ORDER BY page_index", (job_id,)
            ).fetchall()
        return [json.loads(row["record"]) for row in rows]

    def pages_after(self, job_id: str, seq: int) -> list[tuple[int, dict]]:
        """``(seq, record)`` of the results recorded after ``seq``, in the order they were recorded."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, record FROM pages WHERE job_id = ? AND seq > ? ORDER BY seq", (job_id, seq)
            ).fetchall()
        return [(row["seq"], json.loads(row["record"])) for row in rows]

    # --- webhooks -----------------------------------------------------------------------------------------

    def due_webhooks(self) -> list[JobRow]:
        with self._lock:
            rows = self._db.execute(
                f"""SELECT {_JOB_COLUMNS} FROM jobs
                    WHERE webhook_state = 'pending' AND webhook_not_before <= ? ORDER BY finished_at""",
                (time.time(),),
            ).fetchall()
        return [JobRow.from_row(row) for row in rows]

    def webhook_tried(self, job_id: str, delivered: bool, retry_in_s: float | None) -> None:
        """Record a delivery attempt: delivered, to retry in ``retry_in_s``, or (None) given up."""
        state = "delivered" if delivered else ("pending" if retry_in_s is not None else "failed")
        with self._transaction() as db:
            db.execute(
                """UPDATE jobs SET webhook_state = ?, webhook_attempts = webhook_attempts + 1,
                       webhook_not_before = ? WHERE id = ?""",
                (state, time.time() + (retry_in_s or 0), job_id),
            )

    # --- internals ----------------------------------------------------------------------------------------

    def _get(self, db: sqlite3.Connection, job_id: str) -> JobRow | None:
        row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRow.from_row(row) if row is not None else None

    def _transaction(self):
        return _Transaction(self._db, self._lock)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under the store's lock; rolled back if the block raises."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.lock.release()


def ensure_unlocked(path: Path) -> None:
    """Raise ``StoreLocked`` now if another API process holds ``path``: a clear error before the server starts
    (the store takes the lock for itself when it opens)."""
    _lock(path).close()


def _lock(path: Path):
    """Hold ``<path>.lock`` exclusively for as long as the returned file stays open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(f"{path}.lock", "a+")  # kept open: the lock lasts as long as the store
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreLocked(f"{path} is in use by another dsocr API process (pid in {path}.lock)") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
