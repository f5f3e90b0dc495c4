"""Peak memory while loading a full-size checkpoint: it must never hold two copies of the weights.

Writes a random checkpoint with the official full-size tensor layout (bf16, one 6.7 GB shard, like the
published one) unless it exists, then loads it in a fresh process while a thread samples the process's
anonymous resident memory (the weights it owns; memory-mapped file pages are counted apart, as the kernel
can drop them at will). Records the result as JSON.

    python benchmarks/load_memory.py --checkpoint /tmp/dsocr-full-random [--dtype bf16|fp32]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "load_memory.json"

_MEASURE = r"""
import json, sys, threading, time
import torch
from dsocr.model.checkpoint import load_model

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) * 1024 for k in ("RssAnon", "RssFile")}

peak = status()
baseline = dict(peak)
done = False
def sample():
    while not done:
        for key, value in status().items():
            peak[key] = max(peak[key], value)
        time.sleep(0.01)

thread = threading.Thread(target=sample)
thread.start()
started = time.perf_counter()
model = load_model(sys.argv[1], dtype=getattr(torch, sys.argv[2]))
seconds = time.perf_counter() - started
done = True
thread.join()
weights = sum(p.numel() * p.element_size() for p in model.parameters())
print(json.dumps({"seconds": seconds, "weights_bytes": weights, "baseline": baseline, "peak": peak, "final": status()}))
"""


def write_full_size_random(directory: Path) -> None:
    from safetensors.torch import save_file

    from dsocr.model.config import ModelConfig
    from dsocr.model.deepseek_ocr import DeepseekOCR, official_name

    config = ModelConfig()
    with torch.device("meta"):
        model = DeepseekOCR(config)
    generator = torch.Generator().manual_seed(0)
    tensors = {
        official_name(name): (torch.randn(p.shape, generator=generator) * 0.02).to(torch.bfloat16)
        for name, p in model.named_parameters()
    }
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config.to_dict(), indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    args = parser.parse_args()
    if not (args.checkpoint / "config.json").is_file():
        started = time.perf_counter()
        write_full_size_random(args.checkpoint)
        print(f"wrote {args.checkpoint} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    file_bytes = sum(f.stat().st_size for f in args.checkpoint.glob("*.safetensors"))
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(args.checkpoint), args.dtype], check=True, capture_output=True, text=True
    )
    measured = json.loads(out.stdout)
    added_anon = measured["peak"]["RssAnon"] - measured["baseline"]["RssAnon"]
    result = {
        "command": f"python benchmarks/load_memory.py --checkpoint {args.checkpoint} --dtype {args.dtype}",
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "dtype": args.dtype,
        "checkpoint_file_bytes": file_bytes,
        "loaded_weight_bytes": measured["weights_bytes"],
        "peak_anonymous_bytes_added": added_anon,
        "peak_over_weights": round(added_anon / measured["weights_bytes"], 3),
        "peak_file_backed_bytes": measured["peak"]["RssFile"],
        "load_seconds": round(measured["seconds"], 1),
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[args.dtype] = result
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
