"""The multipart form of ``POST /ocr/predict`` and ``POST /ocr/jobs``: the file and how to OCR it.

Everything that can be checked without rendering is checked here, before any page costs anything.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, File, Form, UploadFile

from dsocr.documents import DEFAULT_DPI
from dsocr.output import DocumentInfo
from dsocr.pipeline import OcrOptions
from dsocr.prompts import PROMPTS, resolve_prompt

from .deps import ServicesDep
from .errors import ApiError
from .schemas import Mode, Output

#: Highest dpi asked for; pages are capped at 4096 px on their longest side whatever the dpi.
MAX_DPI = 1200


@dataclass(frozen=True)
class OcrRequest:
    file_name: str
    data: bytes
    sha256: str
    options: OcrOptions
    pages: str | None  # like "1-3,7"; None: all
    dpi: float
    output: str

    def document(self, kind: str, page_count: int, page_indices: list[int]) -> DocumentInfo:
        return DocumentInfo(self.file_name, self.sha256, len(self.data), kind, page_count, page_indices)


async def ocr_request(
    services: ServicesDep,
    file: Annotated[
        UploadFile, File(description="the document: a PDF, PNG, JPEG or TIFF (the type is read from its bytes)")
    ],
    mode: Annotated[Mode, Form(description="resolution mode; gundam tiles large pages")] = "gundam",
    prompt: Annotated[
        str, Form(max_length=2000, description=f"one of {', '.join(PROMPTS)}, or custom text", examples=["markdown"])
    ] = "markdown",
    ref: Annotated[str | None, Form(max_length=500, description="what the locate prompt looks for")] = None,
    pages: Annotated[
        str | None,
        Form(max_length=1000, description="pages to OCR, numbered from 1 (default: all)", examples=["1-3,7"]),
    ] = None,
    dpi: Annotated[float, Form(gt=0, le=MAX_DPI, description="PDF rendering resolution")] = DEFAULT_DPI,
    output: Annotated[Output, Form(description="markdown: no pages[]; json: no markdown; both")] = "both",
    max_new_tokens: Annotated[
        int | None, Form(ge=1, description="most tokens generated per page (default and ceiling: the server's)")
    ] = None,
) -> OcrRequest:
    settings = services.settings
    ceiling = settings.max_new_tokens
    if max_new_tokens is not None and max_new_tokens > ceiling:
        raise ApiError(422, "invalid_parameters", f"max_new_tokens: at most {ceiling} on this server")
    ref = ref or None  # an empty form field is no field
    try:
        resolve_prompt(prompt, ref)
    except ValueError as error:
        raise ApiError(422, "invalid_parameters", f"prompt: {error}") from None
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise too_large(file.size, settings.max_upload_bytes)
    data = await file.read()
    if len(data) > settings.max_upload_bytes:
        raise too_large(len(data), settings.max_upload_bytes)
    sha256 = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    options = OcrOptions(mode=mode, prompt=prompt, ref=ref, max_new_tokens=max_new_tokens or ceiling)
    return OcrRequest((file.filename or "upload")[:255], data, sha256, options, pages or None, dpi, output)


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "file_too_large", f"the file has {size:,} bytes; this server takes at most {limit:,}")


OcrRequestDep = Annotated[OcrRequest, Depends(ocr_request)]
