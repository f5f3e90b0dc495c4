"""The demo's side of the HTTP API: a document in, the API's result out, its errors as readable messages.

Small documents go through ``POST /ocr/predict``; when the API answers that a document has more pages than it
answers in one request (``too_many_pages``), the same document goes in as a job and its pages are followed on the
job's page stream until the result is ready.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx

#: Long enough for a page of a large mode on a busy CPU server; the API bounds its own work.
TIMEOUT_S = 600


class Problem(Exception):
    """What went wrong, said for a person: the API's error message, or why the API could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


def explain(response: httpx.Response) -> Problem:
    """A 4xx/5xx answer as a Problem: the API's own ``message``, with what to do for the ones a user can act on."""
    try:
        body = response.json()
        code, message = body.get("code"), body.get("message") or response.reason_phrase
    except (ValueError, AttributeError):
        code, message = None, response.text[:300] or response.reason_phrase
    status = response.status_code
    if status == 429:
        wait = response.headers.get("Retry-After")
        message = f"The OCR server is busy ({message}). Try again in {wait} s." if wait else f"Busy: {message}"
    elif status == 503:
        message = f"The OCR server is unavailable right now: {message}"
    elif status == 401:
        message = f"The API refused the key: {message}"
    return Problem(message, status, code)


class ApiClient:
    def __init__(self, base_url: str, api_key: str | None = None, transport: httpx.BaseTransport | None = None):
        headers = {"X-API-Key": api_key} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=TIMEOUT_S, trust_env=False, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def read(self, upload: Upload, form: dict[str, str], progress: Callable[[int, int], None]) -> dict:
        """The API's result (record and Markdown) for the document; ``progress(done, total)`` as pages finish."""
        try:
            return self._predict(upload, form)
        except Problem as problem:
            if problem.code != "too_many_pages":
                raise
        return self._as_job(upload, form, progress)

    def _predict(self, upload: Upload, form: dict[str, str]) -> dict:
        return self._call("POST", "/ocr/predict", files={"file": (upload.name, upload.data)}, data=form).json()

    def _as_job(self, upload: Upload, form: dict[str, str], progress: Callable[[int, int], None]) -> dict:
        # The same document with the same options is the same job: a rerun of the page follows it, not a new one.
        key = hashlib.sha256(upload.data + json.dumps(form, sort_keys=True).encode()).hexdigest()
        job = self._call(
            "POST", "/ocr/jobs", files={"file": (upload.name, upload.data)}, data=form, headers={"Idempotency-Key": key}
        ).json()
        total, done = job["pages_total"], 0  # the stream repeats the pages done before it was opened
        progress(job["pages_done"], total)
        try:
            with self._http.stream("GET", f"/ocr/jobs/{job['job_id']}/pages") as stream:
                if stream.status_code >= 400:
                    stream.read()
                    raise explain(stream)
                for line in stream.iter_lines():
                    if line.strip():
                        done += 1
                        progress(min(done, total), total)
        except httpx.TransportError as error:
            raise Problem(f"Lost the connection to the API at {self.base_url} while following the job: {error}")
        state = self._call("GET", f"/ocr/jobs/{job['job_id']}").json()
        if state["status"] != "succeeded":
            reason = (state.get("error") or {}).get("message") or state["status"]
            raise Problem(f"The job did not finish: {reason}", code=f"job_{state['status']}")
        return self._call("GET", f"/ocr/jobs/{job['job_id']}/result").json()

    def _call(self, method: str, path: str, **request) -> httpx.Response:
        try:
            response = self._http.request(method, path, **request)
        except httpx.TransportError as error:
            raise Problem(f"Cannot reach the API at {self.base_url}: {error}") from None
        if response.status_code >= 400:
            raise explain(response)
        return response
