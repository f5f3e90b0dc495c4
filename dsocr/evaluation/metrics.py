"""Edit-distance scores of one page, from rapidfuzz (a well-kept C++ implementation), capped per page.

A page caught in a repetition loop can score a CER of 30 or more; capped at 1.0 it counts as one wholly wrong
page, so one bad page cannot hide how the rest did.
"""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein


def character_error_rate(prediction: str, truth: str) -> float:
    """Levenshtein distance over characters / the truth's length, at most 1.0 (0.0 for two empty texts)."""
    if not truth:
        return 0.0 if not prediction else 1.0
    return min(1.0, Levenshtein.distance(prediction, truth) / len(truth))
