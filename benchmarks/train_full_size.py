"""LoRA fine-tuning steps/s, pages/s and peak GPU memory of the full-size model (random weights: timings do not
depend on the values), through ``dsocr train``'s own step. Run on a GPU:

    python benchmarks/train_full_size.py --device cuda --dtype bf16 --out benchmarks/results/train_full_size_<gpu>.json

``--size tiny`` runs the same code at the tiny test sizes, to check the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from dsocr.contract import resolve_prompt
from dsocr.data.dataset import Dataset
from dsocr.data.synth import synthesize
from dsocr.model.config import ModelConfig
from dsocr.model.deepseek_ocr import DeepseekOCR
from dsocr.model.inference import DTYPES
from dsocr.model.tiny import build_tokenizer, padded_vocab_size, tiny_config
from dsocr.model.tokenizer import Tokenizer
from dsocr.training.adapters import make_trainable
from dsocr.training.config import TrainConfig
from dsocr.training.pages import TrainingPages
from dsocr.training.trainer import train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--mode", default="gundam")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    hf_tokenizer = build_tokenizer()
    config = ModelConfig() if args.size == "full" else tiny_config(padded_vocab_size(hf_tokenizer))
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(DTYPES[args.dtype])
    with device:
        model = DeepseekOCR(config)
    torch.set_default_dtype(default_dtype)

    with tempfile.TemporaryDirectory() as work:
        pages = synthesize(Path(work) / "pages", pages=args.batch * 2, seed=0, preset="lines")
        settings = TrainConfig(
            model="random", data=str(pages), out=work, mode=args.mode, lora_rank=args.lora_rank, batch=args.batch,
            device=args.device, gradient_checkpointing=args.gradient_checkpointing,
        )  # fmt: skip
        trainable = make_trainable(model, settings)
        tokenizer = Tokenizer(hf_tokenizer)
        data = TrainingPages(Dataset.load(pages), tokenizer, args.mode, resolve_prompt("free"), settings)
        examples = [data.example(i) for i in range(args.batch)]
        optimizer = torch.optim.AdamW(trainable.values(), lr=1e-4)
        times = []
        for step in range(args.steps + 2):  # two warm-up steps
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            loss = train_step(model, tokenizer.image_id, examples, trainable, optimizer, settings)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= 2:
                times.append(time.perf_counter() - started)
    seconds = sorted(times)[len(times) // 2]
    result = {
        "command": "python benchmarks/train_full_size.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "trainable_parameters": sum(p.numel() for p in trainable.values()),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_page": [len(e.input_ids) for e in examples],
        "median_step_s": seconds,
        "steps_per_s": 1 / seconds,
        "pages_per_s": args.batch / seconds,
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
        "last_loss": loss,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
