"""Which checkpoint a server runs: the ``model`` object of the output JSON, as for an in-process model."""

from __future__ import annotations

import asyncio
import json

from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from .aio import DEFAULT_URL
from .errors import OcrServerError, ServerUnavailable

#: The composing model that loads the checkpoint and records it in its config parameters.
DECODE_MODEL = "decode"


def lineage(url: str = DEFAULT_URL, *, model: str = DECODE_MODEL, timeout_s: float = 10.0) -> dict:
    """``{"id", "revision", "lineage"}`` (the output JSON's ``model``) from ``model``'s config parameters."""
    return asyncio.run(lineage_async(url, model=model, timeout_s=timeout_s))


async def lineage_async(url: str = DEFAULT_URL, *, model: str = DECODE_MODEL, timeout_s: float = 10.0) -> dict:
    try:
        async with InferenceServerClient(url) as triton:
            config = await triton.get_model_config(model, as_json=True, client_timeout=timeout_s)
    except InferenceServerException as error:
        unreachable = "UNAVAILABLE" in str(error.status())
        reason = f"{url}: could not read the {model} model's config: {error.message()}"
        raise (ServerUnavailable if unreachable else OcrServerError)(reason) from None
    parameters = config["config"].get("parameters", {})

    def parameter(key: str) -> str | None:
        return parameters.get(key, {}).get("string_value") or None

    model_id = parameter("model_id")
    if model_id is None:
        raise OcrServerError(f"{url}: the {model} model's config has no model_id parameter to record lineage with")
    trained = parameter("lineage")
    return {"id": model_id, "revision": parameter("revision"), "lineage": json.loads(trained) if trained else None}
