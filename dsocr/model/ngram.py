"""The windowed no-repeat-n-gram ban DeepSeek serves DeepSeek-OCR with (upstream vLLM's settings).

Unlike transformers' ``no_repeat_ngram_size`` it looks only at generated tokens, only within the last
``window`` of them, and never bans whitelisted ids, so long tables may keep repeating ``<td>``/``</td>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from dsocr.model.tokenizer import Tokenizer
from dsocr.tokens import TD_CLOSE, TD_OPEN


@dataclass(frozen=True)
class NGramRule:
    size: int = 30
    window: int = 90
    whitelist: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"n-gram size must be at least 1, got {self.size}")
        if self.window < self.size:
            raise ValueError(f"window ({self.window}) must be at least the n-gram size ({self.size})")
        # Accept any collection of ids but keep the rule immutable and hashable.
        object.__setattr__(self, "whitelist", frozenset(self.whitelist))

    def banned(self, generated: Sequence[int]) -> set[int]:
        """Ids that would complete, once more, an n-gram already inside the window of generated ids.

        The n-gram ending at the next token is compared against every n-gram lying wholly within the last
        ``window`` tokens; the suffix under construction itself is not one of them.
        """
        if len(generated) < self.size:
            return set()
        recent = list(generated[-self.window :])
        prefix_length = self.size - 1
        prefix = recent[len(recent) - prefix_length :]
        banned = {
            recent[start + prefix_length]
            for start in range(len(recent) - self.size + 1)
            if recent[start : start + prefix_length] == prefix
        }
        return banned - self.whitelist


def default_rule(tokenizer: Tokenizer) -> NGramRule:
    """n = 30 within 90 tokens, table cells exempt: the upstream vLLM recipe DeepSeek advertises."""
    return NGramRule(whitelist=frozenset({tokenizer.token_id(TD_OPEN), tokenizer.token_id(TD_CLOSE)}))


def rule_for(tokenizer: Tokenizer, size: int, window: int) -> NGramRule | None:
    """The default rule with another size and window; ``None`` (no rule) for size 0."""
    return replace(default_rule(tokenizer), size=size, window=window) if size else None
