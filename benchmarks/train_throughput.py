"""Training throughput of the tiny model on the CPU: ``dsocr train``'s step against a plain transformers + PEFT loop.

The same random tiny checkpoint, the same batch of Tiny-mode reader pages (prompt, image, answer laid out the same
way), AdamW, loss on the answer tokens. Rows, timed in turn in one run, each repeat in the same order:

* ``dsocr full``: every weight, as the tiny reader's recipe trains (params.yaml ``reader``);
* ``dsocr lora``: LoRA r=16 on the default targets (attention and every expert, routed ones included);
* ``dsocr lora-shared`` and ``transformers+peft lora-shared``: LoRA r=16 on what both implementations hold as
  ``nn.Linear`` modules (attention and the shared experts; transformers fuses the routed experts into one 3-D
  parameter, which PEFT's ``target_modules`` cannot wrap), so these two rows do the same work.

The reference is the transformers 5 implementation the parity tests use (``tests/support/tf5_reference.py``).

    python -m benchmarks.train_throughput --out benchmarks/results/train_throughput.json   # from the repository root
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import peft
import torch
import torch.nn.functional as F

from dsocr.contract import resolve_prompt
from dsocr.data.dataset import Dataset
from dsocr.data.synth import synthesize
from dsocr.model.checkpoint import load_model
from dsocr.model.tiny import write_tiny_checkpoint
from dsocr.model.tokenizer import Tokenizer
from dsocr.training.adapters import make_trainable
from dsocr.training.config import TrainConfig
from dsocr.training.pages import TrainingPages
from dsocr.training.trainer import train_step
from tests.support.parity import official_state_dict
from tests.support.tf5_reference import Tf5Text, Tf5Vision

#: What both implementations hold as nn.Linear: attention and the shared experts (PEFT matches name suffixes).
SHARED_TARGETS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "shared_experts.gate_proj",
    "shared_experts.up_proj",
    "shared_experts.down_proj",
)


def dsocr_row(checkpoint: Path, pages: TrainingPages, settings: TrainConfig, tokenizer: Tokenizer):
    model = load_model(checkpoint)
    trainable = make_trainable(model, settings)
    optimizer = torch.optim.AdamW(trainable.values(), lr=settings.lr)
    examples = [pages.example(i) for i in range(settings.batch)]

    def step() -> None:
        train_step(model, tokenizer.image_id, examples, trainable, optimizer, settings)

    return step, sum(p.numel() for p in trainable.values())


def reference_row(checkpoint: Path, pages: TrainingPages, batch: int, rank: int, image_id: int, lr: float):
    state = official_state_dict(checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    vision, text = Tf5Vision(state, config), Tf5Text(state, config)
    lora = peft.LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=list(SHARED_TARGETS))
    text_model = peft.get_peft_model(text.model, lora)
    for module in (vision.model, text.lm_head):
        module.requires_grad_(False)
    text_model.train()
    trainable = [p for p in text_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    examples = [pages.example(i) for i in range(batch)]
    pixels = torch.stack([e.image.global_view for e in examples])
    length = max(len(e.input_ids) for e in examples)
    ids = torch.stack([F.pad(torch.tensor(e.input_ids), (0, length - len(e.input_ids))) for e in examples])
    attention = torch.stack(
        [F.pad(torch.ones(len(e.input_ids), dtype=torch.long), (0, length - len(e.input_ids))) for e in examples]
    )
    labels = torch.full_like(ids, -100)
    for row, example in enumerate(examples):
        labels[row, example.answer_start - 1 : len(example.input_ids) - 1] = ids[
            row, example.answer_start : len(example.input_ids)
        ]
    answer_tokens = int((labels != -100).sum())

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        features = vision.model.get_image_features(pixel_values=pixels, return_dict=True).pooler_output
        embeds = text_model.get_input_embeddings()(ids)
        embeds = embeds.masked_scatter((ids == image_id)[..., None], torch.cat(list(features)))
        hidden = text_model(inputs_embeds=embeds, attention_mask=attention, use_cache=False).last_hidden_state
        logits = text.lm_head(hidden).float()
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum") / answer_tokens
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()

    return step, sum(p.numel() for p in trainable)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as work:
        checkpoint = write_tiny_checkpoint(Path(work) / "tiny")
        dataset = Dataset.load(synthesize(Path(work) / "pages", pages=args.batch, seed=7))
        tokenizer = Tokenizer.from_dir(checkpoint)
        base = {"model": str(checkpoint), "data": dataset.root.as_posix(), "out": work, "batch": args.batch}
        settings = {
            "dsocr full": TrainConfig(**base, full=True, lr=1e-3),
            "dsocr lora": TrainConfig(**base, lora_rank=16, lr=1e-3),
            "dsocr lora-shared": TrainConfig(**base, lora_rank=16, lora_targets=SHARED_TARGETS, lr=1e-3),
        }
        pages = TrainingPages(dataset, tokenizer, "tiny", resolve_prompt("free"), settings["dsocr full"])
        rows = {name: dsocr_row(checkpoint, pages, config, tokenizer) for name, config in settings.items()}
        rows["transformers+peft lora-shared"] = reference_row(
            checkpoint, pages, args.batch, 16, tokenizer.image_id, 1e-3
        )
        examples = [pages.example(i) for i in range(args.batch)]
        positions = sum(len(e.input_ids) for e in examples)
        answer = sum(e.answer_tokens for e in examples)

        seconds: dict[str, list[float]] = {name: [] for name in rows}
        for step, _ in rows.values():
            step()  # warm-up: first-call allocations, PEFT's lazy set-up
        for _ in range(args.repeats):
            for name, (step, _) in rows.items():
                started = time.perf_counter()
                for _ in range(args.steps):
                    step()
                seconds[name].append((time.perf_counter() - started) / args.steps)

    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "torch": torch.__version__,
        "peft": peft.__version__,
        "batch": args.batch,
        "mode": "tiny",
        "positions_per_batch": positions,
        "answer_tokens_per_batch": answer,
        "rows": {
            name: {
                "trainable_parameters": rows[name][1],
                "s_per_step_median": statistics.median(times),
                "steps_per_s": 1 / statistics.median(times),
                "pages_per_s": args.batch / statistics.median(times),
                "tokens_per_s": positions / statistics.median(times),
                "answer_tokens_per_s": answer / statistics.median(times),
                "s_per_step_each_repeat": times,
            }
            for name, times in seconds.items()
        },
    }
    shared = results["rows"]
    same_work = shared["dsocr lora-shared"]["trainable_parameters"]
    assert same_work == shared["transformers+peft lora-shared"]["trainable_parameters"], "the two rows differ"
    results["dsocr_over_transformers_lora_shared"] = (
        shared["dsocr lora-shared"]["steps_per_s"] / shared["transformers+peft lora-shared"]["steps_per_s"]
    )
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
