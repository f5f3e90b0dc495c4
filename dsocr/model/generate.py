"""Greedy decoding with continuous batching: pages join and leave the running batch at every step.

``DecodeEngine`` is the one decoding loop of the project. In process, ``greedy_generate`` runs it over a
batch of prompts; in the Triton ``decode`` model it runs forever, fed by requests as they arrive.

Each running page owns one row of a preallocated KV cache, so memory is fixed when the engine is built
(``max_running`` rows of ``max_context`` positions) and pages that do not fit wait in line. Running pages
always fill rows ``0..n-1``: when one finishes, the last row moves into its place, so a step attends over a
view of the cache, never a gathered copy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from dsocr.model.decoder import Decoder
from dsocr.model.ngram import NGramRule

EOS = "eos"
LENGTH = "length"
CANCELLED = "cancelled"
BATCHING = ("continuous", "static")


@dataclass(frozen=True)
class Generated:
    token_ids: list[int]  # without the closing EOS
    finish_reason: str  # EOS or LENGTH
    mean_logprob: float = field(compare=False)  # batched and alone agree on tokens, this float only to rounding


@dataclass(eq=False)
class Sequence:
    """One prompt on its way through the engine; ``tag`` is the caller's handle for it."""

    embeds: torch.Tensor  # [T, H] prompt embeddings
    max_new_tokens: int
    ngram: NGramRule | None = None
    is_cancelled: Callable[[], bool] | None = None
    tag: Any = None
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # EOS, LENGTH or CANCELLED once finished
    logprob_sum: float = 0.0  # of every token picked, the closing EOS included
    budget: int = 0  # tokens it may generate: max_new_tokens, cut to the room left in its cache row

    @property
    def prompt_len(self) -> int:
        return self.embeds.shape[0]

    def cancelled(self) -> bool:
        return self.is_cancelled is not None and self.is_cancelled()

    @property
    def mean_logprob(self) -> float:
        """The model's confidence in what it wrote: the mean log-probability of the tokens it picked (EOS
        included), under its own distribution before the n-gram rule bans anything."""
        picks = len(self.token_ids) + (self.finish_reason == EOS)
        return self.logprob_sum / picks if picks else 0.0


class DecodeEngine:
    """Greedy decoding of many prompts at once, with EOS, ``max_new_tokens`` and the n-gram rule per prompt.

    ``batching="static"`` admits pages only when the running batch is empty, so a batch runs until its
    longest page ends: the baseline that continuous batching is measured against.
    """

    def __init__(
        self,
        decoder: Decoder,
        eos_id: int | None,
        max_running: int = 8,
        max_context: int | None = None,
        batching: str = "continuous",
    ):
        if batching not in BATCHING:
            raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
        limit = decoder.config.max_position_embeddings
        self.max_context = min(max_context or limit, limit)
        self.decoder = decoder
        self.eos_id = eos_id
        self.max_running = max_running
        self.static = batching == "static"
        self.cache = decoder.new_cache(max_running, self.max_context)
        self.running: list[Sequence] = []  # running[i] owns cache row i
        self.waiting: deque[Sequence] = deque()
        self.logits: torch.Tensor | None = None  # [len(running), V]: what each running page picks from next
        self.steps = 0  # batched decoding steps taken
        self.peak_running = 0

    @property
    def idle(self) -> bool:
        return not self.running and not self.waiting

    def submit(self, sequence: Sequence) -> None:
        """Queue a prompt; raises ``ValueError`` if it leaves no room to generate within ``max_context``."""
        room = self.max_context - sequence.prompt_len
        if room < 1:
            raise ValueError(
                f"the prompt takes {sequence.prompt_len} positions, leaving none of the {self.max_context} "
                "a page may use"
            )
        if sequence.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {sequence.max_new_tokens}")
        sequence.budget = min(sequence.max_new_tokens, room)
        self.waiting.append(sequence)

    @torch.inference_mode()
    def step(self) -> list[Sequence]:
        """Admit what fits, pick one token for every running page, advance the rest; returns the pages that ended."""
        ended = self._drop_cancelled()
        self._admit()
        if not self.running:
            return ended
        logits = self.logits
        log_norm = torch.logsumexp(logits.float(), dim=-1)
        for row, sequence in enumerate(self.running):
            if sequence.ngram is not None:
                banned = sequence.ngram.banned(sequence.token_ids)
                if banned:
                    logits[row, list(banned)] = float("-inf")
        next_ids = logits.argmax(dim=-1)
        logprobs = (logits.gather(1, next_ids[:, None])[:, 0].float() - log_norm).tolist()
        finished_rows = []
        for row, (sequence, token, logprob) in enumerate(zip(self.running, next_ids.tolist(), logprobs)):
            sequence.logprob_sum += logprob
            if token == self.eos_id:
                sequence.finish_reason = EOS
            else:
                sequence.token_ids.append(token)
                if len(sequence.token_ids) >= sequence.budget:
                    sequence.finish_reason = LENGTH
            if sequence.finish_reason:
                finished_rows.append(row)
        ended += self._remove(finished_rows)
        if self.running:
            self._advance()
        return ended

    def clear(self) -> list[Sequence]:
        """Take every page out, running and waiting, unfinished; the engine is then idle and usable again."""
        dropped = [*self.running, *self.waiting]
        self.running, self.logits = [], None
        self.waiting.clear()
        return dropped

    def _admit(self) -> None:
        if self.static and self.running:
            return
        while self.waiting and len(self.running) < self.max_running:
            sequence = self.waiting.popleft()
            row = len(self.running)
            positions = torch.arange(sequence.prompt_len, device=sequence.embeds.device)[None]
            logits = self.decoder(sequence.embeds[None], positions, self.cache.rows(row, row + 1), last_only=True)
            self.running.append(sequence)
            self.logits = logits[:, -1] if self.logits is None else torch.cat([self.logits, logits[:, -1]])
        self.peak_running = max(self.peak_running, len(self.running))

    def _advance(self) -> None:
        """One decoding step for every running page: its last token in, logits for the next one out."""
        count = len(self.running)
        device = self.cache.k.device
        last = torch.tensor([s.token_ids[-1] for s in self.running], device=device)[:, None]
        positions = torch.tensor([s.prompt_len + len(s.token_ids) - 1 for s in self.running], device=device)[:, None]
        self.logits = self.decoder(self.decoder.embed_tokens(last), positions, self.cache.rows(0, count))[:, -1]
        self.steps += 1

    def _drop_cancelled(self) -> list[Sequence]:
        cancelled = [s for s in self.waiting if s.cancelled()]
        for sequence in cancelled:
            self.waiting.remove(sequence)
        rows = [row for row, s in enumerate(self.running) if s.cancelled()]
        for sequence in cancelled + [self.running[row] for row in rows]:
            sequence.finish_reason = CANCELLED
        return cancelled + self._remove(rows)

    def _remove(self, rows: list[int]) -> list[Sequence]:
        """Take ``rows`` out of the running batch, moving the last rows into the gaps to keep it dense."""
        if not rows:
            return []
        removed = [self.running[row] for row in rows]
        kept = len(self.running) - len(rows)
        gaps = [row for row in rows if row < kept]
        movers = [row for row in range(kept, len(self.running)) if row not in rows]
        for gap, mover in zip(gaps, movers):
            sequence = self.running[mover]
            self.cache.move_row(mover, gap, sequence.prompt_len + len(sequence.token_ids))
            self.running[gap] = sequence
            self.logits[gap] = self.logits[mover]
        del self.running[kept:]
        self.logits = self.logits[:kept] if kept else None
        return removed


def greedy_generate(
    decoder: Decoder,
    inputs_embeds: torch.Tensor,
    max_new_tokens: int,
    eos_id: int | None,
    ngram: NGramRule | None = None,
) -> list[Generated]:
    """Decode each row of ``inputs_embeds`` ``[B, T, H]`` greedily, as the served engine does.

    A row stops at ``eos_id`` (``None`` never stops) or after ``max_new_tokens``; prompt plus output never
    exceeds the model's ``max_position_embeddings`` (8192, as the official serving limit), and a row cut by
    either limit finishes with ``length``.
    """
    batch, prompt_len, _ = inputs_embeds.shape
    context = min(prompt_len + max_new_tokens, decoder.config.max_position_embeddings)
    engine = DecodeEngine(decoder, eos_id, max_running=batch, max_context=context)
    sequences = [Sequence(embeds, max_new_tokens, ngram) for embeds in inputs_embeds]
    for sequence in sequences:
        engine.submit(sequence)
    while not engine.idle:
        engine.step()
    return [Generated(s.token_ids, s.finish_reason, s.mean_logprob) for s in sequences]
