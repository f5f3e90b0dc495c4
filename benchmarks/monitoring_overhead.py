"""What quality monitoring costs the pages it watches, measured side by side in one run.

Monitoring adds three costs to serving, and each is measured against the work it rides on:

* **decode**: every step takes the log-sum-exp of each running page's logits (``MEAN_LOGPROB``). The decode
  engine runs the same pages (one real page's prompt embeddings, ``--rows`` pages at once, ``--tokens`` each)
  with it ("on") and with ``torch.logsumexp`` answering zeros ("off": the step is otherwise unchanged),
  alternating ``--repeats`` times after a warm-up. On a shared 2-core machine whole runs vary by more than the
  difference, so the overhead is the log-sum-exp timed alone on logits of the same shape (median of 50) over
  the "on" runs' time per step (prefill included); the on/off ratio is kept as a cross-check. ``--decoder tiny``
  is the tiny checkpoint (512 logits a row); ``full-size`` the official decoder's sizes (129,280 logits, bf16)
  with random weights.
* **API accounting**: ``Metrics.page_finished`` (every page histogram, the finish-reason counters and the drift
  window with its gauges) on ``--api-pages`` recognised pages, per page, against the seconds per page decode
  took in the "on" runs.
* **canary**: its pages (the shipped set, each decoded twice when it loops as random weights do) once every
  ``canary_interval_s``, at the "on" runs' seconds per page, as a share of the server's time.

    python benchmarks/monitoring_overhead.py                                 # tiny random checkpoint, 1 min
    python benchmarks/monitoring_overhead.py --decoder full-size --repeats 3 --tokens 16     # 7.5 GB, 8 min
    python benchmarks/monitoring_overhead.py --repeats 1 --tokens 16 --out out/monitoring_overhead_check.json
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import _serving
import torch

from dsocr.api.canary import default_canary
from dsocr.api.metrics import Metrics
from dsocr.api.quality import DriftMonitor
from dsocr.api.settings import Settings
from dsocr.contract import resolve_prompt
from dsocr.data.dataset import Dataset
from dsocr.documents.pipeline import PageResult
from dsocr.model.config import ModelConfig
from dsocr.model.decoder import Decoder
from dsocr.model.generate import DecodeEngine, Sequence
from dsocr.model.inference import OcrModel
from dsocr.model.ngram import NGramRule, rule_for
from dsocr.model.preprocess import prepare_image

TARGET = 0.03  # the aim: pages/s with monitoring within 3 % of without


@dataclass
class Workload:
    decoder: Decoder
    eos_id: int | None
    embeds: torch.Tensor  # one page's prompt embeddings [positions, hidden]
    rule: NGramRule | None


def tiny_workload(args: argparse.Namespace, work: Path, page: bytes) -> Workload:
    """The tiny checkpoint on the real page's prompt, with decode's default n-gram rule."""
    model = OcrModel.load(_serving.checkpoint(args.model, work), device=args.device)
    embeds = model.prompt_embeddings(prepare_image(page, args.mode), resolve_prompt("markdown", None))
    return Workload(model.model.decoder, model.tokenizer.eos_id, embeds, rule_for(model.tokenizer, 30, 90))


def full_size_workload(prompt_positions: int) -> Workload:
    """The full-size decoder (official sizes: 129,280 logits a row), random bf16 weights scaled as a trained
    model's, on random prompt embeddings; it never emits EOS and bans nothing, so every page runs its tokens."""
    config = ModelConfig().decoder
    with torch.device("meta"):
        decoder = Decoder(config)
    decoder = decoder.to_empty(device="cpu").to(torch.bfloat16)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    embeds = torch.randn(prompt_positions, config.hidden_size, generator=generator).to(torch.bfloat16)
    return Workload(decoder, None, embeds, None)


def decode_seconds(workload: Workload, rows: int, tokens: int, confidence: bool) -> float:
    """Wall seconds for ``rows`` pages of ``tokens`` tokens each through a fresh engine."""
    context = workload.embeds.shape[0] + tokens
    engine = DecodeEngine(workload.decoder, workload.eos_id, max_running=rows, max_context=context)
    for _ in range(rows):
        engine.submit(Sequence(workload.embeds, tokens, workload.rule))
    without = mock.patch.object(torch, "logsumexp", lambda x, dim: x.new_zeros(x.shape[0]))
    with contextlib.nullcontext() if confidence else without, torch.inference_mode():
        started = time.perf_counter()
        while not engine.idle:
            engine.step()
        return time.perf_counter() - started


def decode_runs(workload: Workload, args: argparse.Namespace) -> dict[str, list[float]]:
    decode_seconds(workload, args.rows, min(args.tokens, 4), True)  # warm-up
    runs = {"on": [], "off": []}
    for repeat in range(args.repeats):
        for name in ("on", "off") if repeat % 2 == 0 else ("off", "on"):
            runs[name].append(decode_seconds(workload, args.rows, args.tokens, name == "on"))
            print(f"decode {repeat + 1}/{args.repeats} {name:<3} {runs[name][-1]:.3f} s", file=sys.stderr)
    return runs


def logsumexp_seconds(rows: int, vocabulary: int, dtype: torch.dtype, iterations: int = 50) -> float:
    """The median time of the one call monitoring adds to a step, alone: robust where whole runs are noisy."""
    logits = torch.randn(rows, vocabulary).to(dtype)
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        torch.logsumexp(logits.float(), dim=-1)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def api_seconds_per_page(pages: int, window: int, baseline_pages: int) -> float:
    """``Metrics.page_finished`` per recognised page, the drift window full and its baseline set."""
    metrics = Metrics(DriftMonitor(window, baseline_pages))
    results = [
        PageResult(
            index=0,
            status="ok",
            finish_reason="eos" if i % 5 else "length",
            attempts=1 + (i % 7 == 0),
            vision_tokens=100,
            prompt_tokens=110,
            generated_tokens=50 + i % 40,
            mean_logprob=-0.1 - (i % 13) / 20,
            render_seconds=0.1,
            recognize_seconds=1.0,
        )
        for i in range(pages)
    ]
    for result in results[: window + baseline_pages]:  # untimed: the state every later page meets
        metrics.page_finished("predict", "tiny", result, 0.01, 1.2)
    started = time.perf_counter()
    for result in results:
        metrics.page_finished("predict", "tiny", result, 0.01, 1.2)
    return (time.perf_counter() - started) / pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", choices=["tiny", "full-size"], default="tiny", help="whose decode step")
    parser.add_argument("--model", default=_serving.TINY, help="checkpoint of the tiny run (default: random)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--page", type=Path, default=None, help="page image (default: the bundled sample)")
    parser.add_argument("--mode", default="tiny", help="vision mode of the page's prompt")
    parser.add_argument("--rows", type=int, default=16, help="pages decoded at once (decode's template: 16)")
    parser.add_argument("--tokens", type=int, default=256, help="tokens generated per page")
    parser.add_argument("--repeats", type=int, default=9, help="decode runs of each, alternating")
    parser.add_argument("--api-pages", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=None, help="default: results/monitoring_overhead_<decoder>.json")
    args = parser.parse_args()
    args.out = args.out or _serving.RESULTS / f"monitoring_overhead_{args.decoder}.json"
    torch.set_num_threads(1)  # as each served model runs (one torch thread per model)

    started_at = _serving.now()
    settings = Settings()
    with tempfile.TemporaryDirectory() as work:
        page = _serving.page_png(args.page)
        workload = tiny_workload(args, Path(work), page)
        if args.decoder == "full-size":
            workload = full_size_workload(workload.embeds.shape[0])
        runs = decode_runs(workload, args)
    on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
    # Each repeat's on and off ran back to back: their ratio is what drift in the machine's load touches least.
    paired = statistics.median(a / b for a, b in zip(runs["on"], runs["off"]))
    page_s = on / args.rows
    steps = args.tokens  # every page runs its tokens, all rows together: one batched step a token
    dtype = next(workload.decoder.parameters()).dtype
    logsumexp_s = logsumexp_seconds(args.rows, workload.decoder.config.vocab_size, dtype)
    api_s = api_seconds_per_page(args.api_pages, settings.drift_window_pages, settings.drift_baseline_pages)
    canary_pages = len(Dataset.load(default_canary()))
    canary_share = 2 * canary_pages * page_s / settings.canary_interval_s
    overhead = {
        "decode_confidence": round(logsumexp_s / (on / steps), 5),
        "api_accounting": round(api_s / page_s, 5),
        "canary": round(canary_share, 5),
    }
    total = sum(overhead.values())
    record = {
        **_serving.record_header(
            "monitoring_overhead.py", args, started_at, _serving.machine(), _serving.versions(), page
        ),
        "workload": {
            "rows": args.rows,
            "tokens": args.tokens,
            "decoder": args.decoder,
            "prompt_positions": workload.embeds.shape[0],
            "vocabulary": workload.decoder.config.vocab_size,
            "repeats": args.repeats,
        },
        "decode_seconds": {name: [round(s, 4) for s in values] for name, values in runs.items()},
        "decode_median_seconds": {"on": round(on, 4), "off": round(off, 4)},
        # Whole runs on and off differ by less than they vary on a shared 2-core machine: a cross-check only.
        "decode_median_paired_ratio": round(paired, 4),
        "decode_step_ms_on": round(1000 * on / steps, 3),
        "logsumexp_ms_alone": round(1000 * logsumexp_s, 4),
        "seconds_per_page_on": round(page_s, 5),
        "api_accounting_us_per_page": round(api_s * 1e6, 1),
        "canary": {"pages": canary_pages, "interval_s": settings.canary_interval_s},
        "overhead": overhead,
        "pages_per_s_on_over_off": round(1 / (1 + total), 4),
        "within_target": total <= TARGET,
    }
    _serving.write_record(args.out, record)
    print(
        f"decode: logsumexp {overhead['decode_confidence']:.3%} of a step (whole runs on/off {paired:.3f}); "
        f"API accounting {api_s * 1e6:.0f} µs/page ({overhead['api_accounting']:.3%}); "
        f"canary {overhead['canary']:.3%}; total {total:.2%} (target {TARGET:.0%}) -> {args.out}"
    )


if __name__ == "__main__":
    main()
