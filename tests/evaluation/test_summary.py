"""Aggregates: spread of each score, loop and failure rates, groups by tag, precision by compression bucket."""

import pytest

from dsocr.evaluation.scoring import score_page
from dsocr.evaluation.summary import summarize, timing


def page(index, prediction, truth, status="ok", tags=None, **details):
    return score_page(index, f"p{index}.png", 1, truth, prediction, status=status, tags=tags or {}, **details)


def test_mean_median_and_p90_of_cer():
    # CERs 0, 0.25, 0.5, 0.75, 1.0 (truth "abcd", 0..4 characters wrong)
    scores = [page(i, "x" * i + "abcd"[i:], "abcd") for i in range(5)]
    cer = summarize(scores)["cer"]
    assert cer == {"mean": 0.5, "median": 0.5, "p90": pytest.approx(0.9)}


def test_loop_and_failure_rates_count_pages_by_status():
    scores = [page(0, "a", "a"), page(1, "a a a", "a", status="incomplete"), page(2, "", "a", status="failed")]
    summary = summarize(scores)
    assert (summary["loop_rate"], summary["failed_rate"]) == (
        pytest.approx(1 / 3, abs=1e-6),
        pytest.approx(1 / 3, abs=1e-6),
    )


def test_a_failed_page_scores_as_wholly_wrong():
    assert summarize([page(0, "", "truth", status="failed")])["cer"]["mean"] == 1.0


def test_text_tags_group_pages_and_numeric_tags_do_not():
    scores = [page(0, "a", "a", tags={"kind": "table", "seed": 1}), page(1, "b", "a", tags={"kind": "text", "seed": 1})]
    by_tag = summarize(scores)["by_tag"]
    assert set(by_tag) == {"kind=table", "kind=text"}
    assert (by_tag["kind=table"]["cer"]["mean"], by_tag["kind=text"]["cer"]["mean"]) == (0.0, 1.0)


def test_fox_table_buckets_pages_by_truth_tokens_per_vision_token():
    scores = [
        page(0, "abcd", "abcd", truth_tokens=500, vision_tokens=100),  # 5x, precision 1
        page(1, "abxx", "abcd", truth_tokens=700, vision_tokens=100),  # 7x, precision 0.5
        page(2, "abcd", "abcd", truth_tokens=2500, vision_tokens=100),  # 25x
    ]
    assert summarize(scores)["fox"] == [
        {"compression": "0-6", "pages": 1, "precision": 1.0},
        {"compression": "6-8", "pages": 1, "precision": 0.5},
        {"compression": ">=20", "pages": 1, "precision": 1.0},
    ]


def test_pages_without_token_counts_have_no_compression_figures():
    summary = summarize([page(0, "a", "a")])
    assert (summary["compression_ratio"], summary["fox"], summary["vision_tokens"]) == (None, [], None)


def test_the_summary_holds_no_timings():
    summary = summarize([page(0, "a", "a", seconds=1.5)])
    assert "seconds" not in str(summary) and "pages_per_second" not in summary


def test_timings_give_pages_per_second():
    assert (
        timing([page(0, "a", "a", seconds=1.0), page(1, "a", "a", seconds=3.0)], seconds=4.0)["pages_per_second"] == 0.5
    )


def test_no_pages_cannot_be_summarized():
    with pytest.raises(ValueError, match="no pages"):
        summarize([])
