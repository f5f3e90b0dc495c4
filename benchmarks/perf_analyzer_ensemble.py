"""perf_analyzer against the served ``deepseek_ocr`` ensemble: throughput and latency per concurrency level.

Writes a model repository for a checkpoint (a tiny random one by default), starts tritonserver on it, writes
perf_analyzer's input data from one real page (PNG bytes, as a client sends them) and runs perf_analyzer
over gRPC with ``--streaming`` (decode is decoupled, so the ensemble answers only on a stream), once per
concurrency level. Keeps perf_analyzer's CSV (one row per level) and a JSON record beside it: the exact
commands, the server's parameters, versions, machine, date, and the decode engine's metrics per level.

    python benchmarks/perf_analyzer_ensemble.py                      # tiny random checkpoint, mode tiny, 1..32
    python benchmarks/perf_analyzer_ensemble.py --smoke              # the script check: well under a minute
    python benchmarks/perf_analyzer_ensemble.py --model /models/DeepSeek-OCR --device cuda --mode gundam \\
        --max-new-tokens 1024 --concurrency 1,8,32,64 --out benchmarks/results/perf_analyzer_ensemble_h100
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import _serving

from dsocr.contract import ENSEMBLE, IMAGE_INPUT, OcrOptions, option_inputs
from dsocr.triton.server import find_tool

BUNDLED = _serving.REPO / ".tools" / "perf_analyzer" / "bin" / "perf_analyzer"
BINARY_ENV = "DSOCR_PERF_ANALYZER"
DEFAULT_OUT = _serving.RESULTS / "perf_analyzer_ensemble"
SMOKE_OUT = _serving.REPO / "out" / "benchmarks" / "perf_analyzer_ensemble_smoke"  # a check, not a record
PERF_ANALYZER_TIMEOUT_S = 1800
UNSTABLE = "Failed to obtain stable measurement"


@dataclass(frozen=True)
class Measurement:
    """perf_analyzer's measurement settings (see ``perf_analyzer --help``).

    Windows are repeated until three in a row agree within ``stability_percentage`` (at most ``max_trials``).
    ``total_requests`` > 0 instead measures one window of exactly that many requests, without the stability
    search: what the smoke preset uses, to check the path end to end rather than to measure.
    """

    mode: str = "count_windows"  # or time_windows
    window_requests: int | None = None  # per count window; None: max(64, 8 × concurrency)
    interval_ms: int = 5000  # window length in time_windows (and a count window's timeout)
    stability_percentage: float = 10
    max_trials: int = 10
    total_requests: int = 0

    def options(self, concurrency: int) -> list[str]:
        options = [f"--measurement-mode={self.mode}", f"--measurement-interval={self.interval_ms}"]
        if self.mode == "count_windows":
            options.append(f"--measurement-request-count={self.window_requests or max(64, 8 * concurrency)}")
        if self.total_requests:
            options.append(f"--request-count={self.total_requests}")
        return options + [f"--stability-percentage={self.stability_percentage:g}", f"--max-trials={self.max_trials}"]


#: The script check and the CI test: one window of 8 requests per level, no stability search (about 1 s each).
SMOKE = Measurement(window_requests=4, total_requests=8, stability_percentage=100, max_trials=3)


# --- input data ------------------------------------------------------------------------------------------


def input_data(page_png: bytes, options: OcrOptions, budgets: Iterable[int] = ()) -> dict:
    """perf_analyzer's ``--input-data`` JSON for the ensemble: the page with ``options``, one entry per
    ``max_new_tokens`` value in ``budgets`` (default: the options' own), taken in turn by successive requests.

    A BYTES tensor given as ``b64`` is the tensor's serialised form, which Triton and perf_analyzer read as a
    4-byte little-endian length before each element; the image goes that way (``content`` would have to be
    text). Shapes are given explicitly: ``[1]`` per input, the batch dimension of 1 coming from ``-b 1``.
    """
    budgets = list(budgets) or [options.max_new_tokens]
    image = {"b64": base64.b64encode(len(page_png).to_bytes(4, "little") + page_png).decode("ascii"), "shape": [1]}
    fixed = {name: {"content": [value], "shape": [1]} for name, value in option_inputs(options).items()}
    return {
        "data": [
            {IMAGE_INPUT: image, **fixed, "MAX_NEW_TOKENS": {"content": [int(budget)], "shape": [1]}}
            for budget in budgets
        ]
    }


def write_input_data(path: str | Path, page_png: bytes, options: OcrOptions, budgets: Iterable[int] = ()) -> Path:
    """``input_data`` written to ``path``; returns the path. ``settings``: ``input_data``'s keywords."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(input_data(page_png, options, budgets)))
    return path


# --- perf_analyzer -------------------------------------------------------------------------------------------


def find_perf_analyzer(explicit: str | Path | None = None) -> Path:
    """The first of: ``explicit``, ``$DSOCR_PERF_ANALYZER``, ``.tools/perf_analyzer/bin/perf_analyzer``, PATH."""
    return find_tool("perf_analyzer", explicit, BINARY_ENV, BUNDLED)


def perf_analyzer_command(
    binary: Path, grpc_url: str, data: Path, csv_path: Path, concurrency: int, measurement: Measurement
) -> list[str]:
    return [
        str(binary),
        "-m",
        ENSEMBLE,
        "-i",
        "grpc",
        "-u",
        grpc_url,
        "--streaming",
        f"--input-data={data}",
        f"--concurrency-range={concurrency}:{concurrency}",
        *measurement.options(concurrency),
        "-f",
        str(csv_path),
    ]


@dataclass
class Level:
    concurrency: int
    command: list[str]
    seconds: float
    row: dict[str, float]  # perf_analyzer's CSV row
    engine: dict[str, float]  # the decode engine's metrics over the run (counters as increments)
    error: str | None = None


def profile(
    binary: Path,
    grpc_url: str,
    data: Path,
    csv_path: Path,
    levels: Sequence[int],
    measurement: Measurement = Measurement(),
    metrics_url: str | None = None,
    log=lambda line: print(line, file=sys.stderr),
) -> list[Level]:
    """perf_analyzer once per concurrency level; their rows gathered into one CSV at ``csv_path``.

    One run per level (rather than one ``--concurrency-range``) allows any levels, 1, 8, 32 included.
    """
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    results, header = [], None
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-") as scratch:
        for concurrency in levels:
            level_csv = Path(scratch) / f"c{concurrency}.csv"
            command = perf_analyzer_command(binary, grpc_url, data, level_csv, concurrency, measurement)
            before = _serving.scrape_metrics(metrics_url) if metrics_url else {}
            started = time.perf_counter()
            run = subprocess.run(command, capture_output=True, text=True, timeout=PERF_ANALYZER_TIMEOUT_S)
            seconds = time.perf_counter() - started
            after = _serving.scrape_metrics(metrics_url) if metrics_url else {}
            engine = _serving.metrics_delta(before, after) if metrics_url else {}
            output = (run.stdout + run.stderr).strip()
            if run.returncode != 0 or not level_csv.is_file():
                if UNSTABLE not in output:
                    tail = "\n".join(output.splitlines()[-15:])
                    raise RuntimeError(
                        f"perf_analyzer failed (status {run.returncode}) at concurrency {concurrency}:\n{tail}"
                    )
                # A noisy machine: keep going, and say so in the record instead of a number.
                results.append(Level(concurrency, command, round(seconds, 1), {}, engine, UNSTABLE))
            else:
                with level_csv.open(newline="") as file:
                    header, *rows = list(csv.reader(file))
                row = {name: _number(value) for name, value in zip(header, rows[0])}
                results.append(Level(concurrency, command, round(seconds, 1), row, engine))
            log(_summary(results[-1]))
    if header is None:
        raise RuntimeError(f"perf_analyzer found no stable measurement at any level: {list(levels)}")
    with csv_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        writer.writerows(level.row for level in results if level.row)
    return results


def read_csv(path: str | Path) -> list[dict[str, float]]:
    with Path(path).open(newline="") as file:
        return [{name: _number(value) for name, value in row.items()} for row in csv.DictReader(file)]


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _summary(level: Level) -> str:
    row = level.row
    if level.error:
        return f"concurrency {level.concurrency:>3}: {level.error} ({level.seconds:.0f} s)"
    line = (
        f"concurrency {level.concurrency:>3}: {row['Inferences/Second']:8.2f} pages/s, latency p50 "
        f"{row['p50 latency'] / 1000:8.1f} ms, p99 {row['p99 latency'] / 1000:8.1f} ms ({level.seconds:.0f} s)"
    )
    engine = level.engine
    steps = engine.get("dsocr_decode_steps_total")
    if steps:
        tokens = engine.get("dsocr_decode_generated_tokens_total", 0)
        line += f"; decode: {tokens / steps:.2f} tokens/step, peak batch {engine.get('dsocr_decode_peak_running_pages', 0):.0f}"
    return line


def _level_record(level: Level) -> dict:
    record = {"concurrency": level.concurrency}
    if level.error:
        record["error"] = level.error
    else:
        record["pages_per_s"] = level.row["Inferences/Second"]
        record["latency_ms"] = {q: round(level.row[f"{q} latency"] / 1000, 1) for q in ("p50", "p90", "p95", "p99")}
    steps = level.engine.get("dsocr_decode_steps_total")
    if steps:
        record["decode_tokens_per_step"] = round(level.engine["dsocr_decode_generated_tokens_total"] / steps, 2)
    return {
        **record,
        "seconds": level.seconds,
        "decode_engine": level.engine,
        "perf_analyzer_command": shlex.join(level.command),
    }


# --- the benchmark ---------------------------------------------------------------------------------------------


def _levels(text: str) -> list[int]:
    """``1,2,4`` or a perf_analyzer-style range ``start:end[:step]``."""
    try:
        if ":" in text:
            start, end, *step = (int(x) for x in text.split(":"))
            levels = list(range(start, end + 1, step[0] if step else 1))
        else:
            levels = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 1,2,4 or start:end[:step], got {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"concurrency levels must be at least 1, got {text!r}")
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _serving.add_common_options(parser)
    parser.add_argument("--mode", default="tiny", help="tiny|small|base|large|gundam (default tiny)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="per page (default 64; smoke: 8)")
    parser.add_argument("--concurrency", type=_levels, default=None, help="1,2,4 or 1:8:1 (default 1,2,4,8,16,32)")
    parser.add_argument("--measurement-mode", choices=["count_windows", "time_windows"], default=None)
    parser.add_argument(
        "--window-requests", type=int, default=None, help="requests per count window (default max(64, 8 × level))"
    )
    parser.add_argument(
        "--total-requests", type=int, default=None, help="one window of N requests, no stability search (smoke: 8)"
    )
    parser.add_argument("--interval-ms", type=int, default=None, help="window length in ms (time_windows)")
    parser.add_argument("--stability-percentage", type=float, default=None)
    parser.add_argument("--max-trials", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="a script check: 8 tokens, levels 1,2, one short window")
    parser.add_argument("--perf-analyzer", default=None, help="the binary (default: .tools/, then PATH)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="CSV and JSON path stem (default: results/perf_analyzer_ensemble; smoke: out/benchmarks/...)",
    )
    args = parser.parse_args()

    base = SMOKE if args.smoke else Measurement()
    measurement = Measurement(
        mode=args.measurement_mode or base.mode,
        window_requests=args.window_requests or base.window_requests,
        interval_ms=args.interval_ms or base.interval_ms,
        stability_percentage=args.stability_percentage or base.stability_percentage,
        max_trials=args.max_trials or base.max_trials,
        total_requests=base.total_requests if args.total_requests is None else args.total_requests,
    )
    mode = args.mode
    max_new_tokens = args.max_new_tokens or (8 if args.smoke else 64)
    levels = args.concurrency or ([1, 2] if args.smoke else [1, 2, 4, 8, 16, 32])
    out = args.out or (SMOKE_OUT if args.smoke else DEFAULT_OUT)
    binary = find_perf_analyzer(args.perf_analyzer)
    started_at, machine = _serving.now(), _serving.machine()

    with tempfile.TemporaryDirectory(prefix="dsocr-perf-analyzer-") as work:
        work = Path(work)
        page = _serving.page_png(args.page)
        data = write_input_data(work / "input-data.json", page, OcrOptions(mode=mode, max_new_tokens=max_new_tokens))
        model = _serving.checkpoint(args.model, work)
        triton = _serving.server(model, work, _serving.settings_from(args), args.device)
        print(f"starting tritonserver on {args.model} ({args.device}); log {triton.log_path}", file=sys.stderr)
        with _serving.running(triton):
            levels_run = profile(
                binary,
                triton.grpc_url,
                data,
                out.with_suffix(".csv"),
                levels,
                measurement,
                metrics_url=triton.metrics_url,
            )
            parameters = _serving.served_parameters(triton)
            versions = _serving.versions(triton, binary)

    record = {
        **_serving.record_header("perf_analyzer_ensemble.py", args, started_at, machine, versions, page),
        "request": {"mode": mode, "prompt": "markdown", "max_new_tokens": max_new_tokens, "ngram": [30, 90]},
        "server_parameters": parameters,
        "measurement": asdict(measurement),
        "csv": out.with_suffix(".csv").name,
        "levels": [_level_record(level) for level in levels_run],
    }
    _serving.write_record(out.with_suffix(".json"), record)
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
