"""The error answers of each route, for the OpenAPI document: status, what it means, an example body."""

from __future__ import annotations

from .schemas import Error

ERRORS: dict[int, tuple[str, str, str]] = {
    400: (
        "malformed multipart form, such as more than one file or too many fields",
        "malformed_request",
        "Too many files. Maximum number of files is 1.",
    ),
    401: (
        "missing or wrong API key (when the server has one)",
        "unauthorized",
        "this server needs its API key in the X-API-Key header",
    ),
    404: (
        "no such job (or it finished more than job_retention_s ago)",
        "not_found",
        "no job 0b1e0d3c6f7a4c1b9a4b2f1e5d6c7b8a",
    ),
    409: (
        "the job is in the wrong state for this, or the Idempotency-Key was used for another request",
        "job_not_finished",
        "job 0b1e… is running: 12 of 50 pages done",
    ),
    413: (
        "the file is larger than max_upload_bytes",
        "file_too_large",
        "the file has 80,000,000 bytes; this server takes at most 67,108,864",
    ),
    415: (
        "not a PDF, PNG, JPEG or TIFF, whatever its name says",
        "unsupported_type",
        "the file is not a PDF, PNG, JPEG or TIFF: none of their signatures is at its start",
    ),
    422: (
        "a document that cannot be processed (empty_file, corrupt_pdf, encrypted_pdf, no_pages, too_many_pages, bad_page_range, corrupt_image, image_too_large, or a render_* code when no page could be rendered) or invalid_parameters",
        "encrypted_pdf",
        "the PDF is password-protected",
    ),
    429: (
        "no capacity left (overloaded) or too many jobs (job_queue_full); retry after Retry-After seconds",
        "overloaded",
        "64 of 64 pages are in flight; try again later",
    ),
    503: (
        "the Triton server is unreachable or failed its health check; retry after Retry-After seconds",
        "triton_unavailable",
        "the Triton server at 127.0.0.1:8001 is not ready: StatusCode.UNAVAILABLE",
    ),
    504: (
        "the document was not done within the page deadline",
        "deadline_exceeded",
        "the document was not done within the page deadline",
    ),
}


def errors(*statuses: int) -> dict[int | str, dict]:
    """``responses=`` for a route that can answer with ``statuses``."""
    return {
        status: {
            "model": Error,
            "description": ERRORS[status][0],
            "content": {"application/json": {"example": {"code": ERRORS[status][1], "message": ERRORS[status][2]}}},
        }
        for status in statuses
    }
