"""Encoder milliseconds per page for each mode, and greedy decode tokens/s at batch 1 and 32.

Random weights at full size (timings do not depend on the values), built directly on the device in the
requested dtype. Run on a GPU:

    python benchmarks/model_forward.py --device cuda --dtype bf16 --out benchmarks/results/model_forward_<gpu>.json

``--size tiny`` runs the same code at the tiny test sizes, to check the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from dsocr.contract import MODES
from dsocr.model.config import ModelConfig
from dsocr.model.deepseek_ocr import DeepseekOCR
from dsocr.model.generate import greedy_generate
from dsocr.model.inference import DTYPES
from dsocr.model.preprocess import placeholder_count
from dsocr.model.tiny import tiny_config

#: A US-letter page at 144 dpi gets a 2×3 Gundam grid with 6 tiles.
GUNDAM_GRID = (2, 3)


def timed(fn, device: torch.device, warmup: int, iters: int) -> float:
    """Median seconds of ``fn()`` over ``iters`` runs after ``warmup``."""
    times = []
    for i in range(warmup + iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


@torch.inference_mode()
def encoder_ms_per_page(model: DeepseekOCR, device, dtype, warmup, iters) -> dict[str, float]:
    results = {}
    for mode in MODES.values():
        grid = GUNDAM_GRID if mode.crop else (1, 1)
        global_view = torch.randn(3, mode.base_size, mode.base_size, device=device, dtype=dtype)
        tile_count = grid[0] * grid[1] if mode.crop else 0
        tiles = torch.randn(tile_count, 3, mode.image_size, mode.image_size, device=device, dtype=dtype)

        def page():
            return model.encoder.encode_page(global_view, tiles, grid)

        assert page().shape[0] == placeholder_count(mode, grid)
        results[mode.name] = round(1000 * timed(page, device, warmup, iters), 2)
    return results


@torch.inference_mode()
def decode_tokens_per_second(model: DeepseekOCR, batch: int, prompt_len: int, new_tokens: int, device, dtype) -> dict:
    embeds = torch.randn(batch, prompt_len, model.config.decoder.hidden_size, device=device, dtype=dtype)
    positions = torch.arange(prompt_len, device=device).expand(batch, -1)
    decoder = model.decoder
    prefill = timed(
        lambda: decoder(embeds, positions, decoder.new_cache(batch, prompt_len), last_only=True), device, 1, 3
    )
    total = timed(lambda: greedy_generate(decoder, embeds, new_tokens, eos_id=None), device, 1, 3)
    return {
        "batch": batch,
        "prompt_tokens": prompt_len,
        "new_tokens": new_tokens,
        "prefill_ms": round(1000 * prefill, 1),
        "decode_tokens_per_s": round(batch * new_tokens / (total - prefill), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    config = ModelConfig() if args.size == "full" else tiny_config(512)
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with device:
        model = DeepseekOCR(config).eval()
    torch.set_default_dtype(default_dtype)

    gundam_prompt = placeholder_count(MODES["gundam"], GUNDAM_GRID) + 12  # placeholders + BOS + prompt text
    result = {
        "command": "python benchmarks/model_forward.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "dtype": args.dtype,
        "size": args.size,
        "encoder_ms_per_page": encoder_ms_per_page(model, device, dtype, warmup=3, iters=args.iters),
        "gundam_grid": list(GUNDAM_GRID),
        "decode": [
            decode_tokens_per_second(model, batch, gundam_prompt, args.new_tokens, device, dtype) for batch in (1, 32)
        ],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
