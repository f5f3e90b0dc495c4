"""Edit-distance scores of one page, from rapidfuzz (a well-kept C++ implementation).

CER and WER are capped at 1.0 per page: a page caught in a repetition loop can score a CER of 30 or more, and
capped it counts as one wholly wrong page, so one bad page cannot hide how the rest did. The normalized edit
distance is OmniDocBench's text measure: the distance over the longer of the two texts, so it lies in [0, 1].
"""

from __future__ import annotations

import re

from rapidfuzz.distance import Levenshtein

_SPACE = re.compile(r"\s+")


def character_error_rate(prediction: str, truth: str) -> float:
    """Levenshtein distance over characters / the truth's length, at most 1.0 (0.0 for two empty texts)."""
    return _capped_rate(prediction, truth)


def word_error_rate(prediction: str, truth: str) -> float:
    """Levenshtein distance over whitespace-separated words / the truth's word count, at most 1.0."""
    return _capped_rate(prediction.split(), truth.split())


def normalized_edit_distance(prediction: str, truth: str) -> float:
    """Distance / the longer text's length, after runs of whitespace become one space (layout is not text)."""
    return Levenshtein.normalized_distance(_collapse(prediction), _collapse(truth))


def _capped_rate(prediction, truth) -> float:
    if not truth:
        return 0.0 if not prediction else 1.0
    return min(1.0, Levenshtein.distance(prediction, truth) / len(truth))


def _collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()
