"""Checking, loading and writing checkpoints in the official DeepSeek-OCR layout (found by ``dsocr.model.source``).

Loading builds the model on the meta device and then moves one tensor at a time from the memory-mapped
files into place, so a 6.7 GB checkpoint never exists twice in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from dsocr.model.config import ModelConfig
from dsocr.model.deepseek_ocr import DeepseekOCR, official_name
from dsocr.model.source import INDEX_FILE, CheckpointError, Source, resolve, safetensors_files

#: Tensors some re-saved checkpoints carry that the model rebuilds itself (CLIP's position_ids buffer).
IGNORED_TENSORS = frozenset({"model.vision_model.embeddings.position_ids"})


def _tensor_locations(files: list[Path]) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """Every tensor name in ``files`` → (file, shape), read from the headers only."""
    locations = {}
    for file in files:
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():
                locations[name] = (file, tuple(handle.get_slice(name).get_shape()))
    return locations


def read_tensors(source: str | Path | Source, names: list[str]) -> dict[str, torch.Tensor]:
    """Tensors by official name, read on their own (a model part's few tensors without loading that part)."""
    path = source.path if isinstance(source, Source) else resolve(str(source)).path
    locations = _tensor_locations(safetensors_files(path))
    missing = [name for name in names if name not in locations]
    if missing:
        raise CheckpointError(f"{path}: missing tensors {', '.join(missing)}")
    tensors = {}
    for name in names:
        with safe_open(locations[name][0], framework="pt") as handle:
            tensors[name] = handle.get_tensor(name)
    return tensors


def load_model(
    source: str | Path | Source,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    parts: tuple[str, ...] = ("encoder", "decoder"),
) -> DeepseekOCR:
    """Load the checkpoint's weights into a ``DeepseekOCR``; only ``parts`` get weights (the rest stays on meta).

    Every expected tensor is checked before any is loaded: missing, unexpected and mis-shaped tensors are
    reported together in one ``CheckpointError``.
    """
    if not isinstance(source, Source):
        source = resolve(str(source))
    config = ModelConfig.from_file(source.path / "config.json")
    with torch.device("meta"):
        model = DeepseekOCR(config)
    params = {official_name(name): (name, p) for name, p in model.named_parameters()}
    wanted = {k: v for k, v in params.items() if v[0].split(".", 1)[0] in parts}

    locations = _tensor_locations(safetensors_files(source.path))
    missing = sorted(set(wanted) - set(locations))
    unexpected = sorted(set(locations) - set(params) - IGNORED_TENSORS)
    misshaped = [
        f"{name}: checkpoint {list(locations[name][1])}, model {list(p.shape)}"
        for name, (_, p) in wanted.items()
        if name in locations and locations[name][1] != tuple(p.shape)
    ]
    if missing or unexpected or misshaped:
        report = [f"{source.path} does not match its config.json:"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
            if items:
                report.append(f"  {len(items)} {title}: " + ", ".join(items[:20]) + (" …" if len(items) > 20 else ""))
        raise CheckpointError("\n".join(report))

    by_file: dict[Path, list[str]] = {}
    for name in wanted:
        by_file.setdefault(locations[name][0], []).append(name)
    for file, names in by_file.items():
        with safe_open(file, framework="pt", device="cpu") as handle:
            for name in names:
                _set_parameter(model, wanted[name][0], handle.get_tensor(name).to(device=device, dtype=dtype))
    return model.eval().requires_grad_(False)


def _set_parameter(model: nn.Module, name: str, value: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    model.get_submodule(module_name)._parameters[attr] = nn.Parameter(value, requires_grad=False)


def save_model(model: DeepseekOCR, directory: Path, max_shard_bytes: int | None = None) -> None:
    """Write the weights with official tensor names, bf16 as published unless the model is in another dtype.

    Always writes ``model.safetensors.index.json`` like the official repo (one shard unless
    ``max_shard_bytes`` splits them).
    """
    tensors = {official_name(name): p.detach().contiguous() for name, p in model.named_parameters()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if max_shard_bytes and shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        file_name = f"model-{i:05d}-of-{len(shards):06d}.safetensors"
        save_file(shard, str(directory / file_name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file_name))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
