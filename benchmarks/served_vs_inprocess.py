"""The same pages in process and through the served ensemble: pages/s, per-page latency, the server's overhead.

One real page (PNG bytes, the same bytes both ways), a fixed mode and a fixed ``max_new_tokens``, ``--pages``
times:

* in process: ``OcrModel.recognize(png_bytes, ...)`` one page after another, in this process, before any
  server runs (torch's default threads: every core);
* served: the ``deepseek_ocr`` ensemble through ``dsocr.client.AsyncOcrClient`` at each ``--concurrency``,
  closed loop: that many pages in flight, the next sent as one returns. Latency is per page, from sending to
  its response (time waiting for a free slot on the client is not counted).

Each configuration first runs ``--warmup`` pages untimed. The served pages' tokens are compared with the
in-process ones (greedy decoding of the same page: equal unless batched arithmetic flips an argmax).
The server overhead per page is the served mean latency at concurrency 1 minus the in-process mean. Records
the result as JSON.

    python benchmarks/served_vs_inprocess.py                    # tiny random checkpoint, 64 pages, 1/8/32
    python benchmarks/served_vs_inprocess.py --pages 8 --concurrency 1,4 --warmup 1   # script check
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _serving
import torch

from dsocr.client import AsyncOcrClient
from dsocr.contract import OcrOptions, resolve_prompt
from dsocr.model.generate import greedy_generate
from dsocr.model.inference import OcrModel
from dsocr.model.ngram import rule_for
from dsocr.model.preprocess import prepare_image

RESULTS = _serving.RESULTS / "served_vs_inprocess.json"


def summarise(latencies: list[float], wall: float) -> dict:
    """Seconds in, milliseconds and pages/s out."""
    return {
        "pages": len(latencies),
        "wall_s": round(wall, 3),
        "pages_per_s": round(len(latencies) / wall, 3),
        "latency_ms": {
            "mean": round(1000 * statistics.fmean(latencies), 1),
            "p50": round(1000 * _serving.percentile(latencies, 50), 1),
            "p99": round(1000 * _serving.percentile(latencies, 99), 1),
            "min": round(1000 * min(latencies), 1),
            "max": round(1000 * max(latencies), 1),
        },
    }


def in_process(
    model: OcrModel, page: bytes, pages: int, warmup: int, request: OcrOptions
) -> tuple[dict, list[list[int]]]:
    for _ in range(warmup):
        model.recognize(page, request)
    latencies, tokens = [], []
    started = time.perf_counter()
    for _ in range(pages):
        t0 = time.perf_counter()
        result = model.recognize(page, request)
        latencies.append(time.perf_counter() - t0)
        tokens.append(result.token_ids)
    summary = summarise(latencies, time.perf_counter() - started)
    summary["stages_ms_median"] = stages(model, page, min(pages, 8), request)
    return summary, tokens


def stages(model: OcrModel, page: bytes, pages: int, request: OcrOptions) -> dict[str, float]:
    """``recognize``'s steps timed one by one on a few more pages (untimed above): where a page's time goes."""
    times = {"decode_and_preprocess_image": [], "encode_and_embed": [], "generate": []}
    rule = rule_for(model.tokenizer, 30, 90)
    for _ in range(pages):
        t0 = time.perf_counter()
        prepared = prepare_image(page, request.mode)
        t1 = time.perf_counter()
        embeds = model.prompt_embeddings(prepared, resolve_prompt("markdown", None))
        t2 = time.perf_counter()
        greedy_generate(model.model.decoder, embeds[None], request.max_new_tokens, model.tokenizer.eos_id, rule)
        t3 = time.perf_counter()
        for key, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
            times[key].append(seconds)
    return {key: round(1000 * statistics.median(values), 1) for key, values in times.items()}


async def served(url: str, page: bytes, pages: int, concurrency: int, request: OcrOptions):
    """``pages`` pages, ``concurrency`` in flight at any time; per-page latencies and the tokens of each."""
    latencies, tokens = [], []
    async with AsyncOcrClient(url, max_in_flight=concurrency, deadline_s=3600, retries=0) as client:
        remaining = iter(range(pages))

        async def worker():
            for _ in remaining:
                t0 = time.perf_counter()
                result = await client.recognize(page, request)
                latencies.append(time.perf_counter() - t0)
                tokens.append(result.token_ids)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, pages))))
        wall = time.perf_counter() - started
    return (summarise(latencies, wall) if pages else {}), tokens


def _levels(text: str) -> list[int]:
    levels = [int(x) for x in text.split(",")]
    if min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be at least 1")
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _serving.add_common_options(parser)
    parser.add_argument("--pages", type=int, default=64, help="pages per configuration (default 64)")
    parser.add_argument("--mode", default="tiny", help="tiny|small|base|large|gundam (default tiny)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="default 64")
    parser.add_argument("--concurrency", type=_levels, default=[1, 8, 32], help="served levels (default 1,8,32)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed pages before each configuration")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    request = OcrOptions(mode=args.mode, max_new_tokens=args.max_new_tokens)
    started_at, machine = _serving.now(), _serving.machine()

    with tempfile.TemporaryDirectory(prefix="dsocr-served-vs-inprocess-") as work:
        work = Path(work)
        page = _serving.page_png(args.page)
        checkpoint = _serving.checkpoint(args.model, work)

        if args.device == "cpu" and args.threads:
            torch.set_num_threads(args.threads)
        model = OcrModel.load(checkpoint, device=args.device)
        threads = torch.get_num_threads()
        local, reference = in_process(model, page, args.pages, args.warmup, request)
        print(_line("in process", local), file=sys.stderr)
        del model
        gc.collect()

        triton = _serving.server(checkpoint, work, _serving.settings_from(args), args.device)
        results = {}
        with _serving.running(triton):
            for concurrency in args.concurrency:
                asyncio.run(served(triton.grpc_url, page, args.warmup, concurrency, request))
                before = _serving.scrape_metrics(triton.metrics_url)
                stats_before = _serving.model_stats(triton)
                summary, tokens = asyncio.run(served(triton.grpc_url, page, args.pages, concurrency, request))
                engine = _serving.metrics_delta(before, _serving.scrape_metrics(triton.metrics_url))
                summary["triton_ms_per_request"] = _serving.stats_per_request(
                    stats_before, _serving.model_stats(triton)
                )
                summary["same_tokens_as_in_process"] = sum(t == reference[0] for t in tokens)
                steps = engine.get("dsocr_decode_steps_total")
                if steps:
                    summary["decode_tokens_per_step"] = round(engine["dsocr_decode_generated_tokens_total"] / steps, 2)
                summary["speedup_vs_in_process"] = round(summary["pages_per_s"] / local["pages_per_s"], 2)
                results[f"served_c{concurrency}"] = summary
                print(_line(f"served, concurrency {concurrency}", summary), file=sys.stderr)
            parameters = _serving.served_parameters(triton)
            versions = _serving.versions(triton)

    first = results[f"served_c{args.concurrency[0]}"]
    overhead_ms = round(first["latency_ms"]["mean"] - local["latency_ms"]["mean"], 1)
    record = {
        **_serving.record_header("served_vs_inprocess.py", args, started_at, machine, versions, page),
        "request": {
            "mode": request.mode,
            "max_new_tokens": request.max_new_tokens,
            "prompt": "markdown",
            "ngram": [30, 90],
        },
        "pages": args.pages,
        "warmup": args.warmup,
        "in_process_torch_threads": threads,
        "server_parameters": parameters,
        "in_process": {**local, "same_tokens_as_in_process": sum(t == reference[0] for t in reference)},
        **results,
        "served_overhead_ms_per_page": {
            "concurrency": args.concurrency[0],
            "mean_latency_minus_in_process": overhead_ms,
            "p50_latency_minus_in_process": round(first["latency_ms"]["p50"] - local["latency_ms"]["p50"], 1),
            "relative": round(first["latency_ms"]["mean"] / local["latency_ms"]["mean"] - 1, 3),
        },
    }
    _serving.write_record(args.out, record)
    print(f"served overhead at concurrency {args.concurrency[0]}: {overhead_ms:+.1f} ms per page (mean latency)")
    print(f"wrote {args.out}")


def _line(name: str, summary: dict) -> str:
    latency = summary["latency_ms"]
    return (
        f"{name:<24} {summary['pages_per_s']:8.2f} pages/s  latency mean {latency['mean']:8.1f} ms  "
        f"p50 {latency['p50']:8.1f} ms  p99 {latency['p99']:8.1f} ms"
    )


if __name__ == "__main__":
    main()
