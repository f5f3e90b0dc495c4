"""What routes depend on: the resources the lifespan made, as one ``Services`` object (``ServicesDep``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from .metrics import Metrics
from .pages import PageBudget, PageRunner
from .rendering import RenderPools
from .settings import Settings
from .store import JobStore
from .triton import TritonLink
from .worker import JobEvents, JobWorker


@dataclass(frozen=True)
class Services:
    settings: Settings
    metrics: Metrics
    link: TritonLink  # the gRPC client and the server's health
    budget: PageBudget  # pages in flight: admission control
    renderers: RenderPools  # PDF rendering for requests (jobs have their own)
    runner: PageRunner
    store: JobStore
    worker: JobWorker
    events: JobEvents


def get_services(request: Request) -> Services:
    return request.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
