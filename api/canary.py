"""The canary: a small labelled dataset replayed through the served ensemble on a schedule, scored like
``dsocr eval`` scores it, published as ``dsocr_canary_*`` gauges. It watches accuracy where production pages,
which have no ground truth, cannot.

Its pages take the path every page takes (the document pipeline against the API's Triton client) but stay out of
the API's page metrics and the drift windows: they are the reference, not the traffic. The deep readiness check
keeps its own one-page canary (``dsocr.client.health``), which says whether the server works, not how well.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib.resources import files
from pathlib import Path

from dsocr.contract import OcrOptions
from dsocr.data.dataset import Dataset
from dsocr.evaluation.runner import recognize_dataset
from dsocr.evaluation.summary import summarize

from .metrics import Metrics
from .pages import LoopRecognizer
from .settings import Settings
from .triton import TritonLink

log = logging.getLogger("dsocr.api")


def default_canary() -> Path:
    """The canary set that ships with dsocr: synthetic pages (``dsocr data synth``) with exact ground truth."""
    return Path(str(files("dsocr") / "samples" / "canary"))


def canary_dataset(settings: Settings) -> Dataset | None:
    """The set the canary replays, read when the app is made so that a bad path fails start-up; None when off."""
    if not settings.canary_enabled:
        return None
    return Dataset.load(settings.canary_data or default_canary())


class Canary:
    def __init__(self, settings: Settings, dataset: Dataset, link: TritonLink, metrics: Metrics):
        self.settings, self.dataset, self.link, self.metrics = settings, dataset, link, metrics
        self.options = OcrOptions(mode=settings.canary_mode, max_new_tokens=settings.canary_max_new_tokens)

    async def run_once(self) -> dict | None:
        """Replay the set once and publish what it scored; None (and ``last_run_ok`` 0) when it could not run."""
        started = time.time()
        summary = None
        try:
            if not self.link.available:
                raise RuntimeError(f"the Triton server is not ready: {self.link.health.detail}")
            recognizer = LoopRecognizer(self.link.client, asyncio.get_running_loop())
            scores = await asyncio.to_thread(lambda: list(recognize_dataset(self.dataset, recognizer, self.options)))
            if all(score.status == "failed" for score in scores):
                raise RuntimeError(f"every canary page failed, e.g. {scores[0].error}")
            summary = summarize(scores)
        except Exception as error:  # a failed run is a finding (canary failing), never the end of the loop
            log.warning("canary run failed: %s", error)
        self.metrics.canary_finished(summary, started, time.time() - started)
        return summary

    async def watch(self) -> None:
        """The first run ``canary_delay_s`` after start-up, then one every ``canary_interval_s``."""
        await asyncio.sleep(self.settings.canary_delay_s)
        while True:
            await self.run_once()
            await asyncio.sleep(self.settings.canary_interval_s)
