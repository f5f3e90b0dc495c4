"""Drift without labels: the baseline, the window, and the standardized shift between them."""

import json

import pytest

from dsocr.api.quality import Baseline, BaselineError, DriftMonitor, baseline_from_evaluation
from dsocr.documents.pipeline import PageResult


def page(mean_logprob: float, finish_reason: str = "eos", attempts: int = 1, generated: int = 50) -> PageResult:
    return PageResult(
        index=0,
        status="ok",
        finish_reason=finish_reason,
        attempts=attempts,
        vision_tokens=100,
        generated_tokens=generated,
        mean_logprob=mean_logprob,
    )


def test_the_first_pages_served_make_the_baseline():
    monitor = DriftMonitor(window=2, baseline_pages=3)
    for value in (-0.2, -0.3, -0.4):
        monitor.observe(page(value))
    assert monitor.baseline.pages == 3
    assert monitor.baseline.mean["confidence"] == pytest.approx(-0.3)
    assert monitor.snapshot() == (None, None)  # the baseline pages are not the window


def test_drift_is_reported_once_the_window_is_full_in_baseline_standard_deviations():
    baseline = Baseline(
        mean={"confidence": -0.3, "loop_rate": 0.0, "compression_ratio": 0.5},
        std={"confidence": 0.1, "loop_rate": 0.1, "compression_ratio": 0.1},
        pages=100,
        source="test",
    )
    monitor = DriftMonitor(window=2, baseline_pages=100, baseline=baseline)
    monitor.observe(page(-0.5, finish_reason="length", attempts=2))
    assert monitor.snapshot()[1] is None  # one page is not a window
    monitor.observe(page(-0.5, finish_reason="length", attempts=2))
    window_mean, drift = monitor.snapshot()
    assert window_mean["confidence"] == pytest.approx(-0.5)
    assert drift["confidence"] == pytest.approx(-2.0)
    assert drift["loop_rate"] == pytest.approx(10.0)
    assert drift["compression_ratio"] == pytest.approx(0.0)


def test_a_signal_that_never_varied_at_baseline_still_has_a_finite_drift():
    monitor = DriftMonitor(window=1, baseline_pages=2)
    for _ in range(2):
        monitor.observe(page(-0.1))  # identical pages: no spread at all
    monitor.observe(page(-0.2))
    assert monitor.snapshot()[1]["confidence"] == pytest.approx(-2.0)  # floored at 0.05


def test_failed_pages_carry_no_signal():
    monitor = DriftMonitor(window=1, baseline_pages=1)
    monitor.observe(PageResult(index=0, status="failed"))
    assert monitor.baseline is None


def test_the_baseline_can_come_from_an_evaluation_run(tmp_path):
    pages = tmp_path / "pages.jsonl"
    rows = [
        {"mean_logprob": -0.2, "finish_reason": "eos", "attempts": 1, "generated_tokens": 40, "vision_tokens": 100},
        {"mean_logprob": -0.4, "finish_reason": "length", "attempts": 2, "generated_tokens": 60, "vision_tokens": 100},
        {"mean_logprob": None, "finish_reason": None, "attempts": 0, "generated_tokens": None, "vision_tokens": None},
    ]
    pages.write_text("".join(json.dumps(row) + "\n" for row in rows))
    baseline = baseline_from_evaluation(pages)
    assert baseline.pages == 2  # the failed page is left out
    assert baseline.mean == pytest.approx({"confidence": -0.3, "loop_rate": 0.5, "compression_ratio": 0.5})


def test_an_evaluation_without_confidences_is_refused_with_the_reason(tmp_path):
    pages = tmp_path / "pages.jsonl"
    pages.write_text(json.dumps({"cer": 0.1, "vision_tokens": None}) + "\n")
    with pytest.raises(BaselineError, match="no recognised page with mean_logprob"):
        baseline_from_evaluation(pages)
