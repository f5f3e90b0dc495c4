"""The full-size DeepEncoder exported to ONNX on CPU: file sizes, export time, parity and peak memory per artifact.

Runs ``export_onnx`` (the code behind ``dsocr export onnx``) once per view size and dtype, each in a fresh
process so that its peak resident memory is its own, and records what every export wrote and measured. An
export that fails (killed for memory, over ``--timeout``, failed parity) is recorded as such and the run goes on.

Without ``--checkpoint`` it writes (once) a random checkpoint with the official full-size encoder: the
published config.json sizes, tensor names and shapes, bf16 like the published file, weights drawn like
``dsocr.model.tiny``'s so that activations stay O(1). It holds the encoder's tensors only (0.8 GB): an export reads
nothing else, and ``load_model(..., parts=("encoder",))`` checks exactly those. Pass the real checkpoint with
``--checkpoint`` for parity figures on the trained weights.

    python benchmarks/export_full_size.py --work /tmp/dsocr-export-bench
    python benchmarks/export_full_size.py --work /tmp/dsocr-export-bench --views 640 --dtypes fp16  # one artifact
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _serving import RESULTS, command_line, machine, now, versions, write_record

RESULT_FILE = RESULTS / "export_full_size.json"
VIEWS = (512, 640, 1024, 1280)
DTYPES = ("fp32", "fp16")


def write_full_size_encoder(directory: Path, seed: int = 0) -> Path:
    """A random checkpoint of the official full-size encoder (official names, shapes and config.json), in bf16."""
    from safetensors.torch import save_file

    from dsocr.model.config import ModelConfig
    from dsocr.model.deepseek_ocr import DeepseekOCR, official_name
    from dsocr.model.tiny import init_random_

    config = ModelConfig()  # the published sizes
    with torch.device("meta"):
        model = DeepseekOCR(config)
    encoder = model.encoder.to_empty(device="cpu")
    init_random_(encoder, seed)
    tensors = {
        official_name(f"encoder.{name}"): p.detach().to(torch.bfloat16) for name, p in encoder.named_parameters()
    }
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config_dict = config.to_dict(name_or_path=f"dsocr/full-size-random-encoder-seed{seed}")
    (directory / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n", encoding="utf-8")
    return directory


def export_one(checkpoint: Path, view: int, dtype: str, out_dir: Path, parity_batches: list[int] | None) -> dict:
    """One export in this process, with the process's own peak memory: what ``--one`` prints as JSON."""
    from dsocr.export import onnx

    started = time.perf_counter()
    record = onnx.export_onnx(str(checkpoint), view, out_dir, dtype=dtype, batches=tuple(parity_batches or ()) or None)
    return {
        "view": view,
        "dtype": dtype,
        "file_bytes": record["file_bytes"],
        "total_bytes": sum(record["file_bytes"].values()),
        "output_shape": record["output"]["shape"],
        "export_seconds": record["export_seconds"],
        "total_seconds": round(time.perf_counter() - started, 1),
        "parity": {
            key: record["parity"][key] for key in ("batch_sizes", "max_abs_error", "relative_error", "tolerance")
        },
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux reports KiB
        "versions": record["versions"],
    }


def run_one(args: argparse.Namespace, checkpoint: Path, view: int, dtype: str) -> dict:
    """``export_one`` in a fresh process, stopped past ``--max-rss-gib`` or ``--timeout``; a failure is recorded
    with how it ended instead of stopping the run."""
    out_dir = args.work / f"onnx-{view}-{dtype}"
    command = [sys.executable, __file__, "--one", str(view), dtype, "--checkpoint", str(checkpoint)]
    command += ["--work", str(out_dir)]
    if args.parity_batches:
        command += ["--parity-batches", *map(str, args.parity_batches)]
    result = {"view": view, "dtype": dtype, "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    limit = int(args.max_rss_gib * 2**30)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        stopped, sampled_peak = None, 0
        while child.poll() is None:
            rss = _resident_bytes(child.pid)
            sampled_peak = max(sampled_peak, rss)
            if rss > limit:
                stopped = f"stopped at {rss / 2**30:.1f} GiB resident, over the --max-rss-gib {args.max_rss_gib} limit"
            elif time.perf_counter() - started > args.timeout:
                stopped = f"stopped after the --timeout of {args.timeout:.0f} s"
            if stopped:
                child.kill()
                child.wait()
                break
            time.sleep(0.2)
        shutil.rmtree(out_dir, ignore_errors=True)  # the numbers are kept; gigabytes of artifacts are not
        for leftover in args.work.glob(f".{out_dir.name}.*"):  # a killed export's staging folder
            shutil.rmtree(leftover, ignore_errors=True)
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        if stopped or child.returncode != 0:
            stderr.seek(0)
            # Exit status -9 without "stopped" is the kernel's out-of-memory killer.
            error = stopped or f"exit status {child.returncode}"
            tail = stderr.read().strip().splitlines()[-5:]
            return {**result, "error": error, "sampled_peak_rss_bytes": sampled_peak, "stderr_tail": tail}
        stdout.seek(0)
        return {**result, **json.loads(stdout.read().strip().splitlines()[-1])}


def _resident_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it has just exited
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _memory_gib() -> float:
    total_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:", 1)[1].split()[0])
    return total_kib / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder: the random checkpoint, the exports")
    parser.add_argument("--checkpoint", type=Path, help="a full-size checkpoint (default: write a random encoder)")
    parser.add_argument("--views", type=int, nargs="+", default=list(VIEWS), choices=VIEWS)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    parser.add_argument(
        "--parity-batches", type=int, nargs="+", help="batch sizes of the parity check (default: export_onnx's own)"
    )
    parser.add_argument(
        "--max-rss-gib",
        type=float,
        default=round(0.8 * _memory_gib(), 1),
        help="stop an export whose resident memory passes this, before the kernel's OOM killer picks a process "
        "(default: 80%% of this machine's memory)",
    )
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per export (default 3 h)")
    parser.add_argument("--out", type=Path, default=RESULT_FILE)
    parser.add_argument("--one", nargs=2, metavar=("VIEW", "DTYPE"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()

    if args.one:
        view, dtype = int(args.one[0]), args.one[1]
        print(json.dumps(export_one(args.checkpoint, view, dtype, args.work, args.parity_batches)))
        return

    run = {"command": command_line("export_full_size.py"), "date": now(), "machine": machine(), "versions": versions()}
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = args.work / "full-size-random-encoder"
        if not (checkpoint / "config.json").is_file():
            started = time.perf_counter()
            write_full_size_encoder(checkpoint)
            print(f"wrote {checkpoint} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        run["checkpoint"] = "random full-size encoder tensors (official names, shapes, bf16), seed 0"
    else:
        run["checkpoint"] = str(checkpoint)
    run["checkpoint_file_bytes"] = sum(f.stat().st_size for f in checkpoint.glob("*.safetensors"))
    run["torch_threads"] = torch.get_num_threads()
    run["max_rss_gib"] = args.max_rss_gib
    run["artifacts"] = []
    # Each invocation adds its run: a later one with other options (say --parity-batches for the largest view)
    # sits beside the first instead of replacing it.
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    results["runs"].append(run)
    for view in args.views:
        for dtype in args.dtypes:
            result = run_one(args, checkpoint, view, dtype)
            run["artifacts"].append(result)
            run["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            write_record(args.out, results)  # after every export, so a long run that dies keeps what it measured
            print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    main()
