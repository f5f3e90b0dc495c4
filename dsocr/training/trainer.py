"""The training loop of ``dsocr train``: pages → loss on the answers → AdamW with warm-up and cosine decay.

A run is a pure function of its ``TrainConfig``: the page order and the learning rate depend on the step alone,
and every ``save_every`` steps the trainable weights, the optimiser and the step go to ``train_state.pt`` (written
whole, then renamed), so ``--resume`` after a kill ends with the same weights as a run that was never stopped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.checkpoint import checkpoint
from tqdm import tqdm

from dsocr.contract import resolve_prompt
from dsocr.data.dataset import Dataset, dataset_hash
from dsocr.model.checkpoint import load_model
from dsocr.model.deepseek_ocr import DeepseekOCR
from dsocr.model.inference import DTYPES
from dsocr.model.source import resolve
from dsocr.model.tokenizer import Tokenizer
from dsocr.training.adapters import make_trainable
from dsocr.training.batch import answer_loss
from dsocr.training.config import TrainConfig
from dsocr.training.evaluate import evaluate
from dsocr.training.output import write_checkpoint
from dsocr.training.pages import TrainingPages
from dsocr.training.schedule import page_indices, warmup_cosine
from dsocr.training.tracking import open_tracker

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.jsonl"


@dataclass(frozen=True)
class TrainResult:
    out: Path
    steps: int
    final_loss: float
    seconds: float
    pages_per_s: float
    tokens_per_s: float  # every position the decoder ran (prompt, image and answer)
    answer_tokens_per_s: float
    final_eval: dict | None


class RunError(ValueError):
    """A run that cannot start: an output folder in the way, a resume state from another configuration."""


def train(config: TrainConfig, progress: bool | None = None, resume: bool = False) -> TrainResult:
    out = Path(config.out)
    _check_output(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    source = resolve(config.model, config.revision)
    model = load_model(source, device=config.device)
    tokenizer = Tokenizer.from_dir(source.path)
    pages = TrainingPages(Dataset.load(config.data), tokenizer, config.mode, resolve_prompt(config.prompt), config)
    eval_pages = (
        TrainingPages(Dataset.load(config.eval_data), tokenizer, config.mode, resolve_prompt(config.prompt), config)
        if config.eval_data
        else None
    )
    trainable = make_trainable(model, config)
    if config.gradient_checkpointing:
        _checkpoint_layers(model)
    total_steps = config.total_steps(len(pages))
    optimizer = torch.optim.AdamW(trainable.values(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.warmup_steps, total_steps, config.min_lr_ratio)
    )
    start = _restore(out / STATE_FILE, config, trainable, optimizer, scheduler) if resume else 0
    log = (out / LOG_FILE).open("a" if start else "w", encoding="utf-8", buffering=1)  # a line per step, as it ends
    tracker = open_tracker(config)
    tracker.start(config, total_steps)

    bar = tqdm(total=total_steps, initial=start, unit="step", disable=not progress if progress is not None else None)
    loss_value, seen_pages, seen_tokens, seen_answer, started = float("nan"), 0, 0, 0, time.perf_counter()
    final_eval = None
    with log, bar, tracker:
        for step in range(start, total_steps):
            examples = [
                pages.example(i)
                for i in page_indices(step * config.pages_per_step, config.pages_per_step, len(pages), config.seed)
            ]
            loss_value = train_step(model, tokenizer.image_id, examples, trainable, optimizer, config)
            scheduler.step()
            seen_pages += len(examples)
            seen_tokens += sum(len(e.input_ids) for e in examples)
            seen_answer += sum(e.answer_tokens for e in examples)
            elapsed = time.perf_counter() - started
            entry = {"step": step + 1, "loss": loss_value, "lr": optimizer.param_groups[0]["lr"], "elapsed_s": elapsed}
            if config.eval_every and ((step + 1) % config.eval_every == 0 or step + 1 == total_steps):
                final_eval = evaluate(model, tokenizer, eval_pages, config)
                entry["eval"] = final_eval
            log.write(json.dumps(entry) + "\n")
            tracker.log_step(entry)
            bar.set_postfix(
                loss=f"{loss_value:.3f}", pages_s=f"{seen_pages / elapsed:.1f}", tok_s=f"{seen_tokens / elapsed:.0f}"
            )
            bar.update()
            if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < total_steps:
                log.flush()
                _save_state(out / STATE_FILE, config, step + 1, trainable, optimizer, scheduler)
        seconds = time.perf_counter() - started
        write_checkpoint(model, source, config, out, total_steps, loss_value, final_eval, _dataset_record(config))
        tracker.finish(out)
    (out / STATE_FILE).unlink(missing_ok=True)
    return TrainResult(
        out=out,
        steps=total_steps,
        final_loss=loss_value,
        seconds=seconds,
        pages_per_s=seen_pages / seconds if seconds else 0.0,
        tokens_per_s=seen_tokens / seconds if seconds else 0.0,
        answer_tokens_per_s=seen_answer / seconds if seconds else 0.0,
        final_eval=final_eval,
    )


def train_step(model: DeepseekOCR, image_id: int, examples, trainable, optimizer, config: TrainConfig) -> float:
    """One optimiser step over ``grad_accum`` micro-batches, the loss averaged over all their answer tokens."""
    optimizer.zero_grad(set_to_none=True)
    total_tokens = sum(e.answer_tokens for e in examples)
    loss_sum = 0.0
    for first in range(0, len(examples), config.batch):
        with _autocast(config):
            loss, _ = answer_loss(model, image_id, examples[first : first + config.batch])
        (loss / total_tokens).backward()
        loss_sum += float(loss.detach())
    if config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(trainable.values(), config.max_grad_norm)
    optimizer.step()
    return loss_sum / total_tokens


def _autocast(config: TrainConfig):
    if config.dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(config.device).type, dtype=DTYPES[config.dtype])


def _checkpoint_layers(model: DeepseekOCR) -> None:
    """Recompute each transformer block's activations in the backward pass instead of keeping them."""
    blocks = [
        *model.encoder.sam_model.blocks,
        *model.encoder.vision_model.transformer.layers,
        *model.decoder.layers,
    ]
    for block in blocks:
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)


def _check_output(out: Path, resume: bool) -> None:
    if resume:
        if not (out / STATE_FILE).is_file():
            raise RunError(f"--resume: {out} holds no {STATE_FILE} to resume from")
        return
    if (out / STATE_FILE).is_file():
        raise RunError(f"{out} holds an unfinished run: pass --resume to continue it, or choose another --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} exists and is not an empty folder")


def _save_state(path: Path, config: TrainConfig, step: int, trainable, optimizer, scheduler) -> None:
    state = {
        "config": config.model_dump(mode="json"),
        "step": step,
        "trainable": {name: p.detach().clone() for name, p in trainable.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _restore(path: Path, config: TrainConfig, trainable, optimizer, scheduler) -> int:
    state = torch.load(path, weights_only=True)
    if state["config"] != config.model_dump(mode="json"):
        changed = sorted(k for k, v in config.model_dump(mode="json").items() if state["config"].get(k) != v)
        raise RunError(f"--resume: {path} is from a run with other settings ({', '.join(changed)})")
    with torch.no_grad():
        for name, parameter in trainable.items():
            parameter.copy_(state["trainable"][name])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["step"]


def _dataset_record(config: TrainConfig) -> dict:
    record = {"data": {"path": config.data, "sha256": dataset_hash(config.data)}}
    if config.eval_data:
        record["eval_data"] = {"path": config.eval_data, "sha256": dataset_hash(config.eval_data)}
    return record
