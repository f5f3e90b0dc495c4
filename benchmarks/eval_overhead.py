"""What ``dsocr eval --server`` costs over ``dsocr ocr --server`` on the same pages: the harness's overhead.

One tiny-checkpoint server; ``--pages`` synthetic reader pages (PNG files with their manifest). Each round runs
both whole commands, in alternating order, as a user would (process start, connecting, rendering, writing
outputs): ``dsocr ocr --server ... --out`` on the page files, and ``dsocr eval --server ... --out`` on the dataset,
both at ``--concurrency`` (``dsocr ocr`` keeps that many pages of one document in flight, and every page here is
its own file, so the comparison is at 1 by default: the same serial work). The overhead is eval's median wall
time over ocr's, minus one. Records the result as JSON.

    python benchmarks/eval_overhead.py                        # 32 pages, 5 rounds
    python benchmarks/eval_overhead.py --pages 4 --rounds 1   # script check
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _serving

from dsocr.data.synth import synthesize

RESULTS = _serving.RESULTS / "eval_overhead.json"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _serving.add_common_options(parser)
    parser.add_argument("--pages", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started_at = _serving.now()
    dsocr = [sys.executable, "-m", "dsocr.cli"]
    with tempfile.TemporaryDirectory(prefix="dsocr-eval-bench-") as scratch:
        work = Path(scratch)
        model = _serving.checkpoint(args.model, work)
        data = synthesize(work / "data", args.pages, seed=1)
        options = [
            "--mode",
            "tiny",
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--concurrency",
            str(args.concurrency),
        ]
        triton = _serving.server(model, work, _serving.settings_from(args), args.device)
        with _serving.running(triton):
            server = ["--server", triton.grpc_url, *options]
            commands = {
                "ocr": [*dsocr, "ocr", str(data / "images"), *server, "--out", str(work / "ocr"), "--no-progress"],
                "eval": [*dsocr, "eval", "--data", str(data), *server, "--out", str(work / "eval"), "--no-progress"],
            }
            timed(commands["ocr"])  # warm-up: the server's first pages compile and allocate
            walls: dict[str, list[float]] = {"ocr": [], "eval": []}
            for round_ in range(args.rounds):
                for name in ("ocr", "eval") if round_ % 2 == 0 else ("eval", "ocr"):
                    walls[name].append(timed(commands[name]))
            versions = _serving.versions(triton)
    medians = {name: statistics.median(values) for name, values in walls.items()}
    record = {
        "command": _serving.command_line("eval_overhead.py"),
        "date": started_at,
        "machine": _serving.machine(),
        "versions": versions,
        "model": args.model,
        "pages": args.pages,
        "concurrency": args.concurrency,
        "max_new_tokens": args.max_new_tokens,
        "wall_s": {name: [round(v, 3) for v in values] for name, values in walls.items()},
        "pages_per_s_median": {name: round(args.pages / median, 3) for name, median in medians.items()},
        "eval_overhead": round(medians["eval"] / medians["ocr"] - 1, 4),
    }
    _serving.write_record(args.out, record)
    print(f"ocr {record['pages_per_s_median']['ocr']} pages/s, eval {record['pages_per_s_median']['eval']} pages/s, "
          f"overhead {record['eval_overhead']:+.1%} -> {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
