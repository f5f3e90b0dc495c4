"""Greedy decoding with a KV cache, the EOS stop and the windowed no-repeat n-gram rule."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dsocr.model.decoder import Decoder
from dsocr.ngram import NGramRule

EOS = "eos"
LENGTH = "length"


@dataclass(frozen=True)
class Generated:
    token_ids: list[int]  # without the closing EOS
    finish_reason: str  # EOS or LENGTH


@torch.inference_mode()
def greedy_generate(
    decoder: Decoder,
    inputs_embeds: torch.Tensor,
    max_new_tokens: int,
    eos_id: int | None,
    ngram: NGramRule | None = None,
) -> list[Generated]:
    """Decode each row of ``inputs_embeds`` ``[B, T, H]`` (prompts of equal length) greedily.

    A row stops at ``eos_id`` (``None`` never stops) or after ``max_new_tokens``; prompt plus output never
    exceeds the model's ``max_position_embeddings`` (8192, as the official serving limit), and a row cut by
    either limit finishes with ``length``.
    """
    batch, prompt_len, _ = inputs_embeds.shape
    room = decoder.config.max_position_embeddings - prompt_len
    if room < 1:
        raise ValueError(
            f"the prompt takes {prompt_len} positions, leaving none of the model's {decoder.config.max_position_embeddings}"
        )
    steps = min(max_new_tokens, room)
    cache = decoder.new_cache(batch, prompt_len + steps)
    device = inputs_embeds.device
    positions = torch.arange(prompt_len, device=device).expand(batch, -1)
    logits = decoder(inputs_embeds, positions, cache, last_only=True)[:, -1]

    generated: list[list[int]] = [[] for _ in range(batch)]
    finished: list[str | None] = [None] * batch
    for step in range(steps):
        if ngram is not None:
            for row, tokens in enumerate(generated):
                banned = ngram.banned(tokens)
                if banned:
                    logits[row, list(banned)] = float("-inf")
        next_ids = logits.argmax(dim=-1)
        for row, token in enumerate(next_ids.tolist()):
            if finished[row] is None:
                if token == eos_id:
                    finished[row] = EOS
                else:
                    generated[row].append(token)
        if all(finished) or step == steps - 1:
            break
        positions = torch.full((batch, 1), prompt_len + step, device=device)
        logits = decoder(decoder.embed_tokens(next_ids[:, None]), positions, cache)[:, -1]
    return [Generated(tokens, reason or LENGTH) for tokens, reason in zip(generated, finished)]
