"""Deep health: is the server able to OCR a page right now, not just answering its health endpoints.

Triton 2.51 goes on answering 200 on /v2/health/ready after a Python-backend stub has died, so readiness
alone says little. The check also sends one tiny canary page through the whole ensemble (preprocess, encode,
decode) and requires a well-formed result within the deadline.
"""

from __future__ import annotations

import asyncio
import functools
import io
import time
from dataclasses import dataclass

from PIL import Image

from dsocr.contract import ENSEMBLE, OcrOptions

from .aio import DEFAULT_URL, AsyncOcrClient


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str
    latency_s: float  # the whole check, canary page included


#: The cheapest request that still runs every step: the smallest mode, one generated token.
CANARY_OPTIONS = OcrOptions(mode="tiny", prompt="free", max_new_tokens=1)


@functools.cache
def canary_page() -> bytes:
    """A blank 64×64 PNG: the smallest page every step of the ensemble still runs on."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def check_health(url: str = DEFAULT_URL, *, model: str = ENSEMBLE, deadline_s: float = 10.0) -> Health:
    """Live, ready, the ensemble ready, and one canary page decoded, all within ``deadline_s``. Never raises."""
    return asyncio.run(check_health_async(url, model=model, deadline_s=deadline_s))


async def check_health_async(url: str = DEFAULT_URL, *, model: str = ENSEMBLE, deadline_s: float = 10.0) -> Health:
    started = time.perf_counter()

    def health(ok: bool, detail: str) -> Health:
        return Health(ok, detail, time.perf_counter() - started)

    # retries=0: a health check reports what it finds now; whoever polls it does the retrying.
    client = AsyncOcrClient(url, model, deadline_s=deadline_s, retries=0)
    try:
        async with asyncio.timeout(deadline_s):
            if not await client.triton.is_server_live():
                return health(False, "the server is not live")
            if not await client.triton.is_server_ready():
                return health(False, "the server is not ready")
            if not await client.triton.is_model_ready(model):
                return health(False, f"the model {model} is not ready")
            page = await client.recognize(canary_page(), CANARY_OPTIONS)
    except TimeoutError:
        return health(False, f"no complete answer within {deadline_s:g} s")
    except Exception as error:  # whatever goes wrong is the finding, not a crash of the check
        return health(False, f"{type(error).__name__}: {error}")
    finally:
        await client.close()
    if page.vision_tokens < 1 or page.finish_reason not in ("eos", "length"):
        return health(False, f"the canary page came back malformed: {page}")
    return health(True, f"canary page decoded ({page.vision_tokens} vision tokens, finish {page.finish_reason})")
