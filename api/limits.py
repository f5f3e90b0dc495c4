"""The request-size limit, answered with the JSON error like every other refusal.

(FastAPI's own ``max_body_size`` answers a request whose Content-Length is over the limit with a plain-text
413, replacing whatever the app answers.)
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import STATE_KEY

CODE = "file_too_large"


class BodyLimit:
    """Refuse a request body over ``max_bytes``: at once when its Content-Length says so, without reading it;
    otherwise as soon as the bytes received pass the limit (a chunked upload has no Content-Length)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = (
            f"the request is larger than this server takes ({self.max_bytes:,} bytes with the form around the file)"
        )
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            scope.setdefault("state", {})[STATE_KEY] = CODE
            response = JSONResponse(
                {"code": CODE, "message": message}, status_code=413, headers={"Connection": "close"}
            )
            return await response(scope, receive, send)
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message_in = await receive()
            received += len(message_in.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, message)  # answered by the app's handler, as the 413 code
            return message_in

        await self.app(scope, receive_within_limit, send)
