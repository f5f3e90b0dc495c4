"""The learning-rate schedule and the page order: both functions of the step alone, so a resumed run repeats them."""

from __future__ import annotations

import math

import torch


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """The factor on the peak learning rate at a step: linear warm-up, then cosine decay to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def page_indices(first: int, count: int, pages: int, seed: int) -> list[int]:
    """Pages ``first`` … ``first + count - 1`` of an endless stream of epochs, each its own seeded permutation."""
    indices, epochs = [], {}
    for position in range(first, first + count):
        epoch = position // pages
        if epoch not in epochs:
            epochs[epoch] = torch.randperm(pages, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        indices.append(int(epochs[epoch][position % pages]))
    return indices
