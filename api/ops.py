"""Operations: liveness, deep readiness and Prometheus metrics. Never behind the API key: probes and scrapers
call them."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .deps import ServicesDep
from .schemas import Live, Ready

router = APIRouter(tags=["operations"])


@router.get("/health/live", response_model=Live, summary="The API process answers")
async def live() -> Live:
    return Live()


@router.get(
    "/health/ready",
    response_model=Ready,
    summary="The API can OCR pages now",
    responses={
        503: {
            "model": Ready,
            "description": "not ready: the reason is in detail",
            "content": {
                "application/json": {
                    "example": {
                        "ready": False,
                        "detail": "StatusCode.UNAVAILABLE: failed to connect to all addresses",
                        "checked_seconds_ago": 0.8,
                        "canary_seconds": 0.002,
                    }
                }
            },
        }
    },
)
async def ready(services: ServicesDep, response: Response) -> Ready:
    """Ready when the Triton server was ready and OCR'd a canary page through the whole ensemble within the last
    ``health_max_age_s`` seconds (checked in the background every ``health_interval_s``): Triton 2.51 keeps
    answering its own readiness probe after a model's backend process has died; the canary page does not."""
    link = services.link
    age = None if link.checked_at is None else time.monotonic() - link.checked_at
    fresh = age is not None and age <= services.settings.health_max_age_s
    ok = link.health.ok and fresh
    if not ok:
        response.status_code = 503
    detail = link.health.detail if fresh or not link.health.ok else f"no check for {age:.0f} s"
    return Ready(
        ready=ok,
        detail=detail,
        checked_seconds_ago=None if age is None else round(age, 3),
        canary_seconds=round(link.health.latency_s, 3) if link.checked_at is not None else None,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
async def metrics(services: ServicesDep) -> Response:
    services.metrics.job_queue_depth.set(await asyncio.to_thread(services.store.unfinished_count))
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
