"""The end of a run: a checkpoint in the official layout (LoRA merged) and the lineage record beside it."""

from __future__ import annotations

import shutil
from pathlib import Path

import peft
import torch
from safetensors.torch import load_file, save_file

from dsocr.model.checkpoint import load_model, save_model
from dsocr.model.deepseek_ocr import DeepseekOCR
from dsocr.model.source import INDEX_FILE, LINEAGE_FILE, Source, read_lineage, resolve, weights_sha256, write_lineage
from dsocr.provenance import dsocr_version, git_commit
from dsocr.training.adapters import adapter_state, add_lora, merge_lora
from dsocr.training.config import TrainConfig

#: Written beside the merged weights (in a folder of its own, so no loader takes it for a weight shard) when the
#: run trained LoRA adapters: ``dsocr train merge`` takes it.
ADAPTER_FILE = "adapter/adapter_model.safetensors"


def write_checkpoint(
    model: DeepseekOCR,
    base: Source,
    config: TrainConfig,
    out: Path,
    steps: int,
    final_loss: float,
    final_eval: dict | None,
    datasets: dict,
) -> None:
    """Write ``model`` into ``out`` as a checkpoint ``dsocr ocr``, ``dsocr serve`` and ``repository build`` load."""
    if config.method == "lora":
        tensors = {name: t.detach().contiguous() for name, t in adapter_state(model).items()}
        (out / ADAPTER_FILE).parent.mkdir(exist_ok=True)
        save_file(tensors, str(out / ADAPTER_FILE), metadata={"format": "pt"})
    lineage = {
        "base": {
            "model_id": base.model_id,
            "revision": base.revision,
            "weights_sha256": weights_sha256(base.path),
            "lineage": read_lineage(base.path),
        },
        **datasets,
        "parameters": config.model_dump(mode="json"),
        "steps": steps,
        "final_loss": final_loss,
        "final_eval": final_eval,
        "dsocr_version": dsocr_version(),
        "git_commit": git_commit(),
    }
    _save(model, base.path, out, config, lineage)


def merge_adapter(adapter_dir: Path, out: Path, base: str | None = None) -> None:
    """Merge the LoRA adapter a run left in ``adapter_dir`` into its base model, as that run's own output did."""
    adapter_dir, out = Path(adapter_dir), Path(out)
    lineage = read_lineage(adapter_dir)
    if lineage is None or not (adapter_dir / ADAPTER_FILE).is_file():
        raise ValueError(f"{adapter_dir}: not the output of a LoRA run (no {LINEAGE_FILE} and {ADAPTER_FILE})")
    config = TrainConfig(**lineage["parameters"])
    source = resolve(base or config.model, None if base else config.revision)
    if weights_sha256(source.path) != lineage["base"]["weights_sha256"]:
        raise ValueError(f"{source.path}: not the base model {adapter_dir} was trained on (its weights differ)")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(source)
    add_lora(model, config)
    peft.set_peft_model_state_dict(model, load_file(adapter_dir / ADAPTER_FILE))
    _save(model, source.path, out, config, {**lineage, "merged_from": str(adapter_dir.resolve())})


def _save(model: DeepseekOCR, base_path: Path, out: Path, config: TrainConfig, lineage: dict) -> None:
    if config.method == "lora":
        merge_lora(model)
    copy_checkpoint_files(base_path, out)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[config.save_dtype]
    save_model(model.to(dtype), out)
    write_lineage(out, lineage)


def copy_checkpoint_files(base: Path, out: Path) -> None:
    """The base's config, tokenizer and generation files: everything but its weights and lineage."""
    for file in base.iterdir():
        if file.is_file() and file.suffix != ".safetensors" and file.name not in (INDEX_FILE, LINEAGE_FILE):
            shutil.copy2(file, out / file.name)
