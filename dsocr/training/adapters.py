"""Which weights a run trains: all of them (``--full``, minus ``--freeze``d parts) or LoRA adapters through PEFT.

PEFT wraps plain PyTorch modules by name, so the model code stays the served code; after training the adapters
are merged into the weights, and the model is the same module tree with the same parameter names as before.
"""

from __future__ import annotations

import peft
from torch import nn

from dsocr.model.deepseek_ocr import DeepseekOCR
from dsocr.training.config import FREEZABLE, TrainConfig


def make_trainable(model: DeepseekOCR, config: TrainConfig) -> dict[str, nn.Parameter]:
    """Set up ``model`` in place for training and return its trainable parameters by name."""
    model.train()
    if config.full:
        model.requires_grad_(True)
    else:
        add_lora(model, config)
    frozen = tuple(prefix for part in config.freeze for prefix in FREEZABLE[part])
    trainable = {}
    for name, parameter in model.named_parameters():
        if frozen and name.startswith(frozen):
            parameter.requires_grad_(False)
        if parameter.requires_grad:
            trainable[name] = parameter
    if not trainable:
        raise ValueError("nothing to train: every parameter is frozen")
    return trainable


def add_lora(model: DeepseekOCR, config: TrainConfig) -> None:
    """Inject LoRA adapters into every module named in ``config.lora_targets``; only they are trainable."""
    lora = peft.LoraConfig(
        r=config.rank,
        lora_alpha=config.lora_alpha or config.rank,
        lora_dropout=0.0,
        target_modules=list(config.lora_targets),
    )
    model.requires_grad_(False)
    try:
        peft.inject_adapter_in_model(lora, model)
    except ValueError as err:  # PEFT's "Target modules ... not found in the base model"
        raise ValueError(f"--lora-targets: {err}") from None


def merge_lora(model: DeepseekOCR) -> DeepseekOCR:
    """Fold every LoRA adapter into its base weight and put the base module back in its place."""
    for name, module in list(model.named_modules()):
        if isinstance(module, peft.tuners.lora.LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())
    return model


def adapter_state(model: nn.Module) -> dict:
    """The LoRA tensors alone, in PEFT's adapter layout (what ``peft.set_peft_model_state_dict`` loads)."""
    return peft.get_peft_model_state_dict(model)
