"""The FastAPI app: ``create_app(settings)``, its resources made and released by the lifespan.

uvicorn --factory dsocr.api.app:create_app     # or: dsocr api --server HOST:PORT
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import version

from fastapi import FastAPI

from . import auth, errors, jobs, ops, predict
from .canary import Canary, canary_dataset
from .deps import Services
from .limits import BodyLimit
from .metrics import Metrics, RequestMetrics
from .pages import PageBudget, PageRunner
from .quality import DriftMonitor, baseline_from_evaluation
from .rendering import RenderPools
from .settings import Settings
from .store import JobStore
from .triton import TritonLink
from .worker import JobEvents, JobWorker

DESCRIPTION = """
PDFs and images in, Markdown and layout JSON out, through a dsocr Triton server (the `deepseek_ocr` ensemble).

* `POST /ocr/predict` answers small documents in the request; `POST /ocr/jobs` takes documents of any length
  as durable background jobs.
* Errors are JSON, `{"code": ..., "message": ...}`, with a stable `code`; see each route's responses.
* Results follow dsocr's versioned output schema (`schema_version`), with the document `markdown` and each
  page's `latency_ms` added.
"""
#: One file part, a few small fields: a form with thousands of parts is refused at the second file.
FORM_LIMITS = {"max_files": 1, "max_fields": 16, "max_part_size": 64 * 1024}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="dsocr",
        version=version("dsocr"),
        summary="DeepSeek-OCR over HTTP",
        description=DESCRIPTION,
        lifespan=_lifespan,
        form_limits=FORM_LIMITS,
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings, app.state.metrics = settings, Metrics(drift_monitor(settings))
    app.state.canary_dataset = canary_dataset(settings)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)  # added last: the outermost, it sees every answer
    app.include_router(predict.router, dependencies=auth.guard(settings))
    app.include_router(jobs.router, dependencies=auth.guard(settings))
    app.include_router(ops.router)
    return app


def drift_monitor(settings: Settings) -> DriftMonitor:
    baseline = baseline_from_evaluation(settings.drift_baseline) if settings.drift_baseline else None
    return DriftMonitor(settings.drift_window_pages, settings.drift_baseline_pages, baseline)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[dict]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    async with contextlib.AsyncExitStack() as resources:
        store = JobStore(settings.jobs_db)
        resources.callback(store.close)
        link = TritonLink(settings, metrics)
        resources.push_async_callback(link.close)
        renderers = RenderPools(settings.render_pools, settings)
        resources.push_async_callback(renderers.close)
        job_renderers = RenderPools(settings.job_workers, settings)
        resources.push_async_callback(job_renderers.close)
        runner = PageRunner(link, metrics, threads=settings.max_in_flight_pages)
        resources.callback(runner.close)
        budget = PageBudget(settings.max_in_flight_pages, metrics)
        events = JobEvents()
        worker = JobWorker(settings, store, job_renderers, runner, budget, link, metrics, events)

        await link.check()  # before the first request: a healthy server is usable at once
        watcher = asyncio.create_task(link.watch())
        resources.push_async_callback(_cancel, watcher)
        if app.state.canary_dataset is not None:
            canary = asyncio.create_task(Canary(settings, app.state.canary_dataset, link, metrics).watch())
            resources.push_async_callback(_cancel, canary)
        worker.start()
        resources.push_async_callback(worker.stop)
        yield {"services": Services(settings, metrics, link, budget, renderers, runner, store, worker, events)}


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
