"""Continuous against static batching in the served decode engine, on pages of mixed output lengths.

Two servers on the same checkpoint, differing only in decode's ``batching`` parameter (the same
``max_running_pages``, context and threads): ``continuous`` admits a waiting page into any free row of the
running batch at every step; ``static`` admits pages only when the running batch is empty, so a batch runs
until its longest page ends (the baseline). The workload: ``--pages`` copies of one real page in a mode
with few vision tokens (``tiny``, so decoding dominates), each with its own ``max_new_tokens`` drawn from
``--lengths`` with a fixed seed; the tiny random checkpoint never emits EOS, so each page generates exactly
its budget. All pages go through the ensemble with ``--concurrency`` in flight (closed loop).

Both servers are up for the whole run and the workload alternates between them (``--repeats`` times each,
after an untimed warm-up), so drift in the machine hits both alike; the median run of each is reported.
Before the servers start, the same comparison runs on ``DecodeEngine`` alone in this process (the page's
prompt embeddings computed once; same rows and concurrency): the scheduling's gain with nothing else on the
machine. Records JSON and a PNG plot of throughput per configuration.

    python benchmarks/continuous_vs_static.py                         # tiny random checkpoint, 64 pages
    python benchmarks/continuous_vs_static.py --pages 16 --repeats 1 --engine-repeats 1 --warmup 2  # check
    python benchmarks/continuous_vs_static.py --replot                # redraw the plot of the recorded JSON
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import _serving
import torch

from dsocr.client import AsyncOcrClient
from dsocr.contract import OcrOptions, resolve_prompt
from dsocr.model.generate import DecodeEngine, Sequence
from dsocr.model.inference import OcrModel
from dsocr.model.ngram import rule_for
from dsocr.model.preprocess import prepare_image

RESULTS = _serving.RESULTS / "continuous_vs_static.json"
CONFIGS = ("static", "continuous")
TARGET = 1.5  # the aim: continuous ≥ 1.5 × static throughput


def workload(pages: int, lengths: list[int], seed: int) -> list[int]:
    """Each page's ``max_new_tokens``."""
    return random.Random(seed).choices(lengths, k=pages)


async def run_workload(url: str, page: bytes, budgets: list[int], concurrency: int, mode: str) -> dict:
    """Every page once, ``concurrency`` in flight; wall time, per-page latencies, tokens generated."""
    latencies, generated, short = [], 0, 0
    async with AsyncOcrClient(url, max_in_flight=concurrency, deadline_s=3600, retries=0) as client:
        queue = iter(budgets)

        async def worker():
            nonlocal generated, short
            for budget in queue:
                t0 = time.perf_counter()
                result = await client.recognize(page, OcrOptions(mode=mode, max_new_tokens=budget))
                latencies.append(time.perf_counter() - t0)
                generated += result.generated_tokens
                short += result.generated_tokens < budget  # a page that ended on EOS (never with tiny weights)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(budgets)))))
        wall = time.perf_counter() - started
    return {
        **_throughput(len(budgets), generated, wall),
        "pages_ended_before_budget": short,
        "latency_ms": {
            "p50": round(1000 * _serving.percentile(latencies, 50), 1),
            "p99": round(1000 * _serving.percentile(latencies, 99), 1),
            "mean": round(1000 * statistics.fmean(latencies), 1),
        },
    }


def measure(triton, page: bytes, budgets: list[int], concurrency: int, mode: str) -> dict:
    before = _serving.scrape_metrics(triton.metrics_url)
    run = asyncio.run(run_workload(triton.grpc_url, page, budgets, concurrency, mode))
    engine = _serving.metrics_delta(before, _serving.scrape_metrics(triton.metrics_url))
    steps = engine.get("dsocr_decode_steps_total", 0)
    # Rows filled per batched step: how full the engine kept its batch (max_running_pages at best).
    run["decode_steps"] = int(steps)
    run["mean_running_pages"] = (
        round(engine.get("dsocr_decode_generated_tokens_total", 0) / steps, 2) if steps else None
    )
    return run


def engine_only(checkpoint: str, page: bytes, budgets: list[int], args: argparse.Namespace, batching: str) -> dict:
    """The decode engine alone, in this process: the same pages' prompt embeddings (computed once, untimed),
    at most ``--concurrency`` submitted at a time, the next as one ends. What the batching policy gains
    with nothing else on the CPU."""
    model = _engine_model(checkpoint, args.device)
    embeds = model.prompt_embeddings(prepare_image(page, args.mode), resolve_prompt("markdown", None))
    rule = rule_for(model.tokenizer, 30, 90)
    engine = DecodeEngine(
        model.model.decoder,
        model.tokenizer.eos_id,
        max_running=args.max_running_pages,
        max_context=args.max_context_tokens,
        batching=batching,
    )
    pending = iter(budgets)
    for budget in itertools.islice(pending, args.concurrency):
        engine.submit(Sequence(embeds, budget, rule))
    generated = 0
    started = time.perf_counter()
    with torch.inference_mode():
        while not engine.idle:
            for ended in engine.step():
                generated += len(ended.token_ids)
                for budget in itertools.islice(pending, 1):
                    engine.submit(Sequence(embeds, budget, rule))
    wall = time.perf_counter() - started
    return {
        **_throughput(len(budgets), generated, wall),
        "decode_steps": engine.steps,
        "mean_running_pages": round(generated / engine.steps, 2),
    }


def _throughput(pages: int, generated: int, wall: float) -> dict:
    return {
        "wall_s": round(wall, 3),
        "pages_per_s": round(pages / wall, 3),
        "generated_tokens_per_s": round(generated / wall, 1),
        "generated_tokens": generated,
    }


_MODELS: dict[tuple[str, str], OcrModel] = {}


def _engine_model(checkpoint: str, device: str) -> OcrModel:
    if (checkpoint, device) not in _MODELS:
        _MODELS[checkpoint, device] = OcrModel.load(checkpoint, device=device)
    return _MODELS[checkpoint, device]


def plot(path: Path, served: dict[str, dict], engine: dict[str, dict] | None, title: str) -> None:
    """Bars per configuration (the median run, every run as a dot) with the continuous/static ratio on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("served: pages / s", served, "pages_per_s"),
        ("served: generated tokens / s", served, "generated_tokens_per_s"),
        ("served: mean pages per decode step", served, "mean_running_pages"),
    ]
    if engine:
        panels.append(("decode engine alone: tokens / s", engine, "generated_tokens_per_s"))
    figure, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 4))
    colors = {"static": "#9e9e9e", "continuous": "#1f77b4"}
    for axis, (label, runs, key) in zip(axes, panels):
        values = [runs[name][key] for name in CONFIGS]
        spread = [runs[name]["each_run"][key] for name in CONFIGS]
        bars = axis.bar(CONFIGS, values, color=[colors[name] for name in CONFIGS])
        for x, points in enumerate(spread):
            axis.plot([x] * len(points), points, "k.", markersize=4)
        axis.bar_label(bars, labels=[f"{value:.0f}" if value >= 100 else f"{value:.2f}" for value in values])
        axis.set_ylim(0, max(max(points) for points in spread) * 1.2)
        axis.set_title(f"{label}\ncontinuous / static = {values[1] / values[0]:.2f}×", fontsize=9)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_record(path: Path) -> Path:
    """The plot of a recorded result, beside it as .png."""
    record = json.loads(path.read_text())
    load, engine = record["workload"], record["engine_alone"]
    title = (
        f"{load['pages']} pages, mode {load['mode']}, max_new_tokens from {load['max_new_tokens_choices']} "
        f"(seed {load['seed']}), concurrency {load['concurrency']}, "
        f"max_running_pages {record['server_parameters']['continuous']['decode']['max_running_pages']}; "
        f"{record['model']} checkpoint, {record['machine']['cores']}-core {record['device']}, "
        f"median of {load['repeats']}; {record['date']}"
    )
    plot(path.with_suffix(".png"), record, engine, title)
    return path.with_suffix(".png")


def median_runs(each_run: dict[str, list[dict]]) -> dict[str, dict]:
    """Per configuration, the run with the median wall time (whole), plus every run's headline numbers."""
    runs = {}
    for name, measured in each_run.items():
        median = sorted(measured, key=lambda run: run["wall_s"])[len(measured) // 2]
        runs[name] = {
            **median,
            "each_run": {
                key: [run[key] for run in measured]
                for key in ("pages_per_s", "generated_tokens_per_s", "mean_running_pages", "wall_s")
            },
        }
    return runs


def ratios(runs: dict[str, dict]) -> dict[str, float]:
    return {
        key: round(runs["continuous"][key] / runs["static"][key], 2)
        for key in ("pages_per_s", "generated_tokens_per_s", "mean_running_pages")
    }


def _line(run: dict) -> str:
    return (
        f"{run['pages_per_s']:7.2f} pages/s {run['generated_tokens_per_s']:8.1f} tokens/s  "
        f"{run['mean_running_pages']} pages per step ({run['decode_steps']} steps)"
    )


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _serving.add_common_options(parser)
    parser.add_argument("--mode", default="tiny", help="default tiny: 73 vision tokens, decoding dominates")
    parser.add_argument("--pages", type=int, default=64, help="pages per run (default 64)")
    parser.add_argument("--lengths", type=_ints, default=[16, 32, 64, 128, 256], help="max_new_tokens choices")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=32, help="pages in flight (default 32)")
    parser.add_argument("--max-running-pages", type=int, default=8, help="decode batch rows, both servers")
    parser.add_argument("--max-context-tokens", type=int, default=1024, help="per page: prompt + output")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per configuration; the median is kept")
    parser.add_argument("--warmup", type=int, default=8, help="untimed pages per server first")
    parser.add_argument(
        "--engine-repeats", type=int, default=3, help="runs of the decode engine alone, in process (0: skip)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON; the plot goes beside it as .png")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot of the recorded --out JSON")
    args = parser.parse_args()
    if args.replot:
        print(f"wrote {plot_record(args.out)}")
        return
    if "batching" in _serving.parse_settings(args.settings).get("decode", {}):
        parser.error("decode.batching is what this benchmark varies; it cannot be --set")
    budgets = workload(args.pages, args.lengths, args.seed)
    decode = {"max_running_pages": str(args.max_running_pages), "max_context_tokens": str(args.max_context_tokens)}
    started_at, machine = _serving.now(), _serving.machine()

    with tempfile.TemporaryDirectory(prefix="dsocr-continuous-vs-static-") as work, ExitStack() as servers:
        work = Path(work)
        page = _serving.page_png(args.page)
        checkpoint = _serving.checkpoint(args.model, work)

        engine_runs = None
        if args.engine_repeats:
            if args.device == "cpu" and args.threads:
                torch.set_num_threads(args.threads)
            each_engine_run = {name: [] for name in CONFIGS}
            engine_only(checkpoint, page, budgets[: args.warmup], args, "continuous")  # warm-up
            for repeat in range(args.engine_repeats):
                for name in CONFIGS:
                    run = engine_only(checkpoint, page, budgets, args, name)
                    each_engine_run[name].append(run)
                    print(f"engine alone {repeat + 1}/{args.engine_repeats} {name:<10} {_line(run)}", file=sys.stderr)
            engine_runs = median_runs(each_engine_run)
            _MODELS.clear()
            gc.collect()

        triton = {}
        for name in CONFIGS:
            settings = _serving.settings_from(args, {"decode": {**decode, "batching": name}})
            triton[name] = _serving.server(checkpoint, work / name, settings, args.device)
            print(f"starting tritonserver with {name} batching; log {triton[name].log_path}", file=sys.stderr)
            servers.enter_context(_serving.running(triton[name]))
        for name in CONFIGS:
            asyncio.run(run_workload(triton[name].grpc_url, page, budgets[: args.warmup], args.concurrency, args.mode))
        each_run = {name: [] for name in CONFIGS}
        for repeat in range(args.repeats):
            for name in CONFIGS:
                run = measure(triton[name], page, budgets, args.concurrency, args.mode)
                each_run[name].append(run)
                latency = run["latency_ms"]
                print(
                    f"served {repeat + 1}/{args.repeats} {name:<10} {_line(run)}  "
                    f"latency p50 {latency['p50']:.0f} ms p99 {latency['p99']:.0f} ms",
                    file=sys.stderr,
                )
        parameters = {name: _serving.served_parameters(triton[name]) for name in CONFIGS}
        versions = _serving.versions(triton["continuous"])

    runs = median_runs(each_run)
    ratio = ratios(runs)
    record = {
        **_serving.record_header("continuous_vs_static.py", args, started_at, machine, versions, page),
        "workload": {
            "pages": args.pages,
            "mode": args.mode,
            "max_new_tokens_choices": args.lengths,
            "seed": args.seed,
            "max_new_tokens_total": sum(budgets),
            "max_new_tokens_each": budgets,
            "concurrency": args.concurrency,
            "warmup_pages": args.warmup,
            "repeats": args.repeats,
        },
        "server_parameters": parameters,
        "static": runs["static"],
        "continuous": runs["continuous"],
        "continuous_over_static": ratio,
        "target": TARGET,
        "meets_target": ratio["pages_per_s"] >= TARGET,
        "engine_alone": None
        if engine_runs is None
        else {
            "what": "DecodeEngine in process on the same prompt embeddings, no server, same rows and concurrency",
            "torch_threads": torch.get_num_threads(),
            "static": engine_runs["static"],
            "continuous": engine_runs["continuous"],
            "continuous_over_static": ratios(engine_runs),
        },
    }
    _serving.write_record(args.out, record)
    plot_record(args.out)
    print(
        f"served continuous / static: {ratio['pages_per_s']}x pages/s, {ratio['generated_tokens_per_s']}x tokens/s "
        f"(target {TARGET}x: {'met' if record['meets_target'] else 'not met'})"
    )
    if engine_runs:
        print(f"decode engine alone, continuous / static: {ratios(engine_runs)['generated_tokens_per_s']}x tokens/s")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
