"""Every error the API answers with: a JSON body ``{"code": ..., "message": ...}`` whose ``code`` is stable and
machine-readable, and an HTTP status that says whose fault it was. Nothing reaches a client as a stack trace.

Codes (docs/api.md has the table): ``malformed_request`` 400, ``unauthorized`` 401, ``not_found`` 404,
``method_not_allowed`` 405, ``idempotency_conflict`` / ``job_not_finished`` / ``job_cancelled`` /
``job_failed`` / ``job_finished`` 409, ``file_too_large`` 413, ``unsupported_type`` 415, the document codes of
``dsocr.documents`` (``empty_file``, ``corrupt_pdf``, ``encrypted_pdf``, ``no_pages``, ``too_many_pages``,
``bad_page_range``, ``corrupt_image``, ``image_too_large``), ``invalid_parameters`` and the page codes
(``render_memory``, ``render_timeout``, ``render_failed``) 422, ``overloaded`` / ``job_queue_full`` 429,
``triton_unavailable`` 503, ``deadline_exceeded`` 504, ``internal_error`` 500 (a bug; logged, never detailed).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from dsocr.documents.errors import DocumentError

#: Codes for what the framework itself rejects, by status.
HTTP_CODES = {
    400: "malformed_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "file_too_large",
    415: "unsupported_type",
    422: "invalid_parameters",
    500: "internal_error",
}
#: A document that is not one at all is the wrong media type; every other bad document is unprocessable.
DOCUMENT_STATUS = {"unsupported_type": 415}
#: Where ``request.state`` keeps the code of an error answer, for the request metrics.
STATE_KEY = "error_code"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def document_error(error: DocumentError) -> ApiError:
    return ApiError(DOCUMENT_STATUS.get(error.code, 422), error.code, str(error))


def overloaded(message: str, retry_after_s: int, code: str = "overloaded") -> ApiError:
    return ApiError(429, code, message, {"Retry-After": str(retry_after_s)})


def error_response(request: Request, status: int, code: str, message: str, headers=None) -> JSONResponse:
    setattr(request.state, STATE_KEY, code)
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Answer every exception, the framework's own included, with the JSON error body."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(request, error.status, error.code, error.message, error.headers)

    @app.exception_handler(DocumentError)
    async def bad_document(request: Request, error: DocumentError) -> JSONResponse:
        return await api_error(request, document_error(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(_describe(problem) for problem in error.errors()[:10])
        return error_response(request, 422, "invalid_parameters", problems or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        code = HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
        headers = error.headers
        if error.status_code == 405:  # Starlette's Allow names the methods of the path's first route only
            headers = {"Allow": ", ".join(_methods_of(request))}
        return error_response(request, error.status_code, code, str(error.detail), headers)

    # Starlette answers with this handler, then raises the exception on for the server to log with its traceback.
    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        return error_response(request, 500, "internal_error", "internal error; the server has logged it")


def _methods_of(request: Request) -> list[str]:
    """Every method some route serves at the request's path."""
    methods = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _describe(problem: dict) -> str:
    where = ".".join(str(part) for part in problem.get("loc", ()) if part not in ("body", "query", "header"))
    return f"{where}: {problem.get('msg', 'invalid')}" if where else str(problem.get("msg", "invalid"))
