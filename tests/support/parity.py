"""Shared pieces of the parity tests: the tiny checkpoint's tensors in the references, and the tolerance."""

from pathlib import Path

import torch
from safetensors.torch import load_file

#: fp32, same weights: outputs must agree to 1e-5 of their own size.
RELATIVE_TOLERANCE = 1e-5


def checkpoint_tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint directory, as stored."""
    tensors = {}
    for file in sorted(checkpoint.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensors


def official_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    return {name: t.float() for name, t in checkpoint_tensors(checkpoint).items()}


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """‖ours − reference‖ / ‖reference‖ over the whole tensor."""
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    return float((ours.double() - reference.double()).norm() / reference.double().norm())
