"""One page's evaluation: what was read, how it compares with the ground truth, and what it cost.

A page that failed scores as an empty prediction (CER 1.0 unless the truth is empty too), so failures lower the
accuracy figures as well as showing in the failed rate; a page still at the token limit after its retry is a loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dsocr.evaluation.metrics import character_error_rate, normalized_edit_distance, word_error_rate


@dataclass(frozen=True)
class PageScore:
    index: int  # 0-based, in manifest order
    source: str
    page: int
    status: str  # "ok", "incomplete" (at the token limit after the retry) or "failed"
    cer: float
    wer: float
    ned: float
    prediction: str
    tags: dict = field(default_factory=dict)
    error: str | None = None
    finish_reason: str | None = None
    attempts: int = 0
    vision_tokens: int | None = None  # None when the engine does not say (scored predictions)
    generated_tokens: int | None = None
    mean_logprob: float | None = None  # the model's confidence, when the engine says (the drift baseline's)
    truth_tokens: int | None = None  # the ground truth in the model's tokenizer, when one is known
    seconds: float | None = None

    @property
    def loop(self) -> bool:
        return self.status == "incomplete"

    @property
    def compression_ratio(self) -> float | None:
        """Ground-truth text tokens per vision token, as the paper measures compression."""
        if self.truth_tokens is None or not self.vision_tokens:
            return None
        return self.truth_tokens / self.vision_tokens

    def record(self) -> dict:
        """The page as a line of ``pages.jsonl``: accuracy and token figures, never timings (see ``timing``)."""
        record = asdict(self)
        del record["seconds"]
        return {**record, "loop": self.loop, "compression_ratio": self.compression_ratio}


def score_page(
    index: int,
    source: str,
    page: int,
    truth: str,
    prediction: str,
    *,
    status: str = "ok",
    tags: dict | None = None,
    **details,
) -> PageScore:
    return PageScore(
        index=index,
        source=source,
        page=page,
        status=status,
        cer=character_error_rate(prediction, truth),
        wer=word_error_rate(prediction, truth),
        ned=normalized_edit_distance(prediction, truth),
        prediction=prediction,
        tags=dict(tags or {}),
        **details,
    )
