"""Aggregates over a set of page scores: what ``metrics.json`` holds, and the timings kept apart from it.

``summarize`` depends only on the pages' accuracy and token figures and rounds every number, so the same
predictions give the same bytes; seconds vary run to run and go to ``timings`` instead.
"""

from __future__ import annotations

import statistics

from dsocr.evaluation.scoring import PageScore

DIGITS = 6
#: Compression-ratio buckets (ground-truth tokens per vision token) of the paper's Fox table, lower bounds.
FOX_BUCKETS = (0.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0)


def summarize(scores: list[PageScore]) -> dict:
    """Mean, median and p90 of each score, loop and failure rates, token means, per tag and per compression bucket."""
    if not scores:
        raise ValueError("no pages to summarize")
    summary = _accuracy(scores)
    summary["vision_tokens"] = _mean([s.vision_tokens for s in scores])
    summary["generated_tokens"] = _mean([s.generated_tokens for s in scores])
    summary["compression_ratio"] = _spread([s.compression_ratio for s in scores])
    summary["by_tag"] = {tag: _accuracy(group) for tag, group in sorted(_by_tag(scores).items())}
    summary["fox"] = _fox_table(scores)
    return summary


def timing(scores: list[PageScore], seconds: float) -> dict:
    per_page = [s.seconds for s in scores if s.seconds is not None]
    return {
        "pages": len(scores),
        "seconds": round(seconds, 3),
        "pages_per_second": round(len(scores) / seconds, 3) if seconds > 0 else None,
        "page_seconds": _spread(per_page, digits=3),
    }


def _accuracy(scores: list[PageScore]) -> dict:
    return {
        "pages": len(scores),
        "cer": _spread([s.cer for s in scores]),
        "wer": _spread([s.wer for s in scores]),
        "ned": _spread([s.ned for s in scores]),
        "loop_rate": _rate([s.loop for s in scores]),
        "failed_rate": _rate([s.status == "failed" for s in scores]),
    }


def _by_tag(scores: list[PageScore]) -> dict[str, list[PageScore]]:
    """Pages grouped by each text or yes/no tag (``kind=table``, ``language=english``); numbers (a seed, a font
    size) and empty values name no group."""
    groups: dict[str, list[PageScore]] = {}
    for score in scores:
        for key, value in score.tags.items():
            if not isinstance(value, str | bool) or value == "":
                continue
            groups.setdefault(f"{key}={_tag_text(value)}", []).append(score)
    return groups


def _fox_table(scores: list[PageScore]) -> list[dict]:
    """Mean precision (1 − normalized edit distance) of the pages in each compression bucket that has any."""
    rows = []
    bounds = [*FOX_BUCKETS, float("inf")]
    for low, high in zip(bounds, bounds[1:]):
        inside = [s for s in scores if s.compression_ratio is not None and low <= s.compression_ratio < high]
        if inside:
            label = f"{low:g}-{high:g}" if high != float("inf") else f">={low:g}"
            rows.append({"compression": label, "pages": len(inside), "precision": _mean([1 - s.ned for s in inside])})
    return rows


def _spread(values: list[float | None], digits: int = DIGITS) -> dict | None:
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    return {
        "mean": round(statistics.fmean(present), digits),
        "median": round(statistics.median(present), digits),
        "p90": round(_percentile(present, 0.9), digits),
    }


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a sorted list."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), DIGITS) if present else None


def _rate(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), DIGITS)


def _tag_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
