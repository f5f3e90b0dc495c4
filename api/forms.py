"""The multipart form of ``POST /ocr/predict`` and ``POST /ocr/jobs``: the file and how to OCR it.

Everything that can be checked without rendering is checked here, before any page costs anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, File, Form, UploadFile

from dsocr.contract import InvalidOptions, OcrOptions
from dsocr.documents.output import DocumentInfo
from dsocr.documents.rendering import DEFAULT_DPI

from .deps import ServicesDep
from .errors import ApiError
from .schemas import Output

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


def _options_form(**fields) -> dict:
    return fields


def _option_parameter(name: str, field) -> inspect.Parameter:
    """A form field for one ``OcrOptions`` field: its type and description; ``OcrOptions`` validates the values."""
    annotation, default = field.annotation, field.default
    if name == "max_new_tokens":  # the server's ceiling, when not asked for
        annotation, default = int | None, None
    form = Form(description=field.description)
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, form]
    )


# FastAPI reads a dependency's parameters from its signature, so the form fields are made from the contract's.
_options_form.__signature__ = inspect.Signature(
    [_option_parameter(name, field) for name, field in OcrOptions.model_fields.items()]
)
OptionFields = Annotated[dict, Depends(_options_form)]


async def ocr_request(
    services: ServicesDep,
    option_fields: OptionFields,
    file: Annotated[
        UploadFile, File(description="the document: a PDF, PNG, JPEG or TIFF (the type is read from its bytes)")
    ],
    pages: Annotated[
        str | None,
        Form(max_length=1000, description="pages to OCR, numbered from 1 (default: all)", examples=["1-3,7"]),
    ] = None,
    dpi: Annotated[float, Form(gt=0, le=MAX_DPI, description="PDF rendering resolution")] = DEFAULT_DPI,
    output: Annotated[Output, Form(description="markdown: no pages[]; json: no markdown; both")] = "both",
) -> OcrRequest:
    settings = services.settings
    ceiling = settings.max_new_tokens
    max_new_tokens = option_fields["max_new_tokens"]
    if max_new_tokens is not None and max_new_tokens > ceiling:
        raise ApiError(422, "invalid_parameters", f"max_new_tokens: at most {ceiling} on this server")
    try:
        options = OcrOptions.checked(**{**option_fields, "max_new_tokens": max_new_tokens or ceiling})
    except InvalidOptions as error:
        raise ApiError(422, "invalid_parameters", str(error)) from None
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise too_large(file.size, settings.max_upload_bytes)
    data = await file.read()
    if len(data) > settings.max_upload_bytes:
        raise too_large(len(data), settings.max_upload_bytes)
    sha256 = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    return OcrRequest((file.filename or "upload")[:255], data, sha256, options, pages or None, dpi, output)


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "file_too_large", f"the file has {size:,} bytes; this server takes at most {limit:,}")


OcrRequestDep = Annotated[OcrRequest, Depends(ocr_request)]
