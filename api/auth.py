"""Optional API-key authentication: off unless ``DSOCR_API_API_KEY`` is set, then required on every /ocr route
in the ``X-API-Key`` header (``DSOCR_API_API_KEY_HEADER``). Health and metrics stay open for probes."""

import secrets
from typing import Annotated

from fastapi import Depends, Security
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader

from .errors import ApiError
from .settings import Settings


def guard(settings: Settings) -> list[DependsParam]:
    """The dependencies that protect a router: none when no key is set."""
    if settings.api_key is None:
        return []
    header = settings.api_key_header
    scheme = APIKeyHeader(name=header, auto_error=False, description="the key this server was started with")
    expected = settings.api_key.get_secret_value().encode()

    # Without postponed annotations in this module: FastAPI reads this one at runtime, and ``scheme`` is local.
    async def require_api_key(key: Annotated[str | None, Security(scheme)]) -> None:
        if key is None or not secrets.compare_digest(key.encode(), expected):
            raise ApiError(401, "unauthorized", f"this server needs its API key in the {header} header")

    return [Depends(require_api_key)]
