"""Drift without labels: how the pages of the last window compare with a baseline, per signal.

Production pages have no ground truth, but every page says something about how the model coped: its confidence
(mean log-probability of the tokens it picked), whether it looped (hit the token limit, or needed the retry), and
its compression ratio (text tokens per vision token). Each signal's drift is the standardized shift

    (mean over the last ``window`` pages − baseline mean) / baseline standard deviation

so 0 is "as at deploy time" and −1 is "one baseline standard deviation lower". The baseline is the model
version's evaluation run (its ``pages.jsonl``, from ``dsocr eval``), or else the first ``baseline_pages`` pages
the API serves. See docs/monitoring.md.
"""

from __future__ import annotations

import json
import statistics
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from dsocr.documents.pipeline import PageResult

SIGNALS = ("confidence", "loop_rate", "compression_ratio")
#: A signal that never varied at baseline (no page looped) still drifts when it moves: its deviation is floored.
MIN_STD = {"confidence": 0.05, "loop_rate": 0.1, "compression_ratio": 0.05}


def page_signals(result: PageResult) -> dict[str, float] | None:
    """The page's value of each signal, or None for a page nothing was recognised on."""
    if result.finish_reason is None or result.mean_logprob is None:
        return None
    return {
        "confidence": result.mean_logprob,
        "loop_rate": _looped(result.finish_reason, result.attempts),
        "compression_ratio": result.compression_ratio or 0.0,
    }


def _looped(finish_reason: str | None, attempts: int) -> float:
    """1.0 for a page that hit the token limit or needed the retry (DeepSeek's scripts treat both as a loop)."""
    return float(finish_reason == "length" or attempts > 1)


@dataclass(frozen=True)
class Baseline:
    mean: dict[str, float]
    std: dict[str, float]
    pages: int
    source: str  # "evaluation: <path>" or "first pages served"

    @classmethod
    def of(cls, pages: list[dict[str, float]], source: str) -> Baseline:
        mean = {s: statistics.fmean(p[s] for p in pages) for s in SIGNALS}
        std = {s: max(statistics.pstdev(p[s] for p in pages), MIN_STD[s]) for s in SIGNALS}
        return cls(mean, std, len(pages), source)


class BaselineError(ValueError):
    """An evaluation file that cannot give a baseline; the message says why."""


def baseline_from_evaluation(pages_jsonl: Path) -> Baseline:
    """The baseline from ``dsocr eval``'s ``pages.jsonl``: its recognised pages' confidence, loops and ratio."""
    try:
        lines = pages_jsonl.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as error:
        raise BaselineError(f"cannot read the drift baseline {pages_jsonl}: {error}") from None
    pages = [
        {
            "confidence": r["mean_logprob"],
            "loop_rate": _looped(r["finish_reason"], r.get("attempts", 1)),
            "compression_ratio": r["generated_tokens"] / r["vision_tokens"],
        }
        for r in records
        if r.get("mean_logprob") is not None and r.get("vision_tokens")
    ]
    if not pages:
        raise BaselineError(
            f"{pages_jsonl} has no recognised page with mean_logprob: evaluate the model with `dsocr eval --model` "
            "or `--server` (dsocr 0.1 with schema 1.2 or later)"
        )
    return Baseline.of(pages, f"evaluation: {pages_jsonl}")


class DriftMonitor:
    """Keeps the last ``window`` pages' signals and, once a baseline exists, their drift from it."""

    def __init__(self, window: int, baseline_pages: int, baseline: Baseline | None = None):
        self.baseline = baseline
        self.baseline_pages = baseline_pages
        self._first: list[dict[str, float]] = []
        self.window: deque[dict[str, float]] = deque(maxlen=window)

    def observe(self, result: PageResult) -> None:
        signals = page_signals(result)
        if signals is None:
            return
        if self.baseline is None:
            self._first.append(signals)
            if len(self._first) >= self.baseline_pages:
                self.baseline = Baseline.of(self._first, "first pages served")
                self._first = []
            return
        self.window.append(signals)

    def snapshot(self) -> tuple[dict[str, float] | None, dict[str, float] | None]:
        """The window's mean of each signal (None while empty) and each signal's standardized shift from the
        baseline (None until the window is full: a few pages would be noise)."""
        if not self.window:
            return None, None
        mean = {s: statistics.fmean(p[s] for p in self.window) for s in SIGNALS}
        if self.baseline is None or len(self.window) < self.window.maxlen:
            return mean, None
        return mean, {s: (mean[s] - self.baseline.mean[s]) / self.baseline.std[s] for s in SIGNALS}
