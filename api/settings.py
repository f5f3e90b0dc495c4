"""The API's settings: environment variables ``DSOCR_API_<NAME>`` (``DSOCR_API_TRITON_URL=10.0.0.5:8001``), or
keyword arguments, which win. Every limit the API enforces is here, with its default."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from dsocr.contract import ModeName
from dsocr.documents.admission import DEFAULT_MAX_PAGES
from dsocr.documents.rendering import DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_PAGE_TIMEOUT_S

MIB = 1 << 20


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSOCR_API_", frozen=True, extra="forbid")

    # Where the pages go.
    triton_url: str = Field("127.0.0.1:8001", description="gRPC address of the dsocr Triton server")
    triton_retries: int = Field(2, ge=0, description="resends of a page the server reports UNAVAILABLE for")
    page_deadline_s: float = Field(600.0, gt=0, description="time limit of one page on the server, retries included")

    # Who may call.
    api_key: SecretStr | None = Field(None, description="when set, every /ocr request must carry it; off by default")
    api_key_header: str = "X-API-Key"

    # What is admitted.
    max_upload_bytes: int = Field(64 * MIB, ge=1, description="largest file accepted (413 above)")
    max_image_pixels: int = Field(64_000_000, ge=1, description="largest PNG/JPEG/TIFF, in pixels (422 above)")
    max_sync_pages: int = Field(16, ge=1, description="most pages /ocr/predict takes; longer documents go to jobs")
    max_job_pages: int = Field(DEFAULT_MAX_PAGES, ge=1, description="most pages one job takes")
    max_new_tokens: int = Field(8192, ge=1, description="the most tokens a request may ask for per page")
    max_in_flight_pages: int = Field(64, ge=1, description="pages rendered or on the server at once (429 above)")
    retry_after_s: int = Field(2, ge=1, description="Retry-After of a 429")
    max_queued_jobs: int = Field(1000, ge=1, description="unfinished jobs kept (429 above)")

    # Rendering (see dsocr.documents.RenderPool).
    render_pools: int = Field(2, ge=1, description="documents /ocr/predict opens or renders at once")
    render_workers: int = Field(2, ge=1, description="PDFium processes per document being rendered")
    render_timeout_s: float = Field(DEFAULT_PAGE_TIMEOUT_S, gt=0, description="time limit of one page's rendering")
    render_memory_bytes: int = Field(DEFAULT_MEMORY_LIMIT_BYTES, ge=MIB, description="memory a render process may add")

    # Health.
    health_interval_s: float = Field(15.0, gt=0, description="canary page period while the server is healthy")
    health_retry_s: float = Field(1.0, gt=0, description="canary page period while it is not")
    health_deadline_s: float = Field(10.0, gt=0, description="time the canary check may take")
    health_max_age_s: float = Field(60.0, gt=0, description="/health/ready needs a good canary this recent")

    # Quality monitoring (docs/monitoring.md).
    canary_enabled: bool = Field(True, description="replay the labelled canary set through the server on a schedule")
    canary_data: Path | None = Field(None, description="the canary dataset folder (default: the one dsocr ships)")
    canary_interval_s: float = Field(600.0, gt=0, description="time between canary runs")
    canary_delay_s: float = Field(30.0, ge=0, description="time from start-up to the first canary run")
    canary_mode: ModeName = Field("base", description="the mode the canary pages are read in")  # type: ignore[valid-type]
    canary_max_new_tokens: int = Field(1024, ge=1, description="token limit of a canary page")
    drift_window_pages: int = Field(200, ge=1, description="pages the drift gauges average over")
    drift_baseline_pages: int = Field(200, ge=1, description="first pages served that make the baseline")
    drift_baseline: Path | None = Field(
        None, description="the model version's `dsocr eval` pages.jsonl to take the baseline from instead"
    )

    # Jobs.
    jobs_db: Path = Field(
        default_factory=lambda: default_jobs_db(),
        description="the SQLite file jobs and their pages live in (default: the user's state directory)",
    )
    job_workers: int = Field(2, ge=1, description="jobs processed at once")
    job_page_concurrency: int = Field(8, ge=1, description="pages of one job in flight at once")
    job_retention_s: float = Field(7 * 24 * 3600.0, gt=0, description="finished jobs are deleted after this")
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_attempts: int = Field(5, ge=1, description="tries of a webhook call before it is given up")

    @property
    def max_body_bytes(self) -> int:
        """The whole request: the file plus the form fields and multipart framing around it."""
        return self.max_upload_bytes + MIB


def default_jobs_db() -> Path:
    """``$XDG_STATE_HOME/dsocr/jobs.sqlite3`` (``~/.local/state`` when unset): never the working directory, where
    a checkout would collect an untracked database."""
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "dsocr" / "jobs.sqlite3"
