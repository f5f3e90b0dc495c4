"""The files of an evaluation run, in its ``--out`` folder.

``metrics.json``   what was evaluated (dataset, engine, options) and the aggregates: the same inputs, the same bytes
``timings.json``   seconds and pages/s, which vary run to run
``pages.jsonl``    one line per page: scores, status, tokens, the prediction itself
``plots/*.csv``    plot data in the shape ``dvc plots`` reads; ``plots/*.png`` the same drawn (when matplotlib is
                   installed)
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from dsocr.evaluation.scoring import PageScore

METRICS_FILE = "metrics.json"
TIMINGS_FILE = "timings.json"
PAGES_FILE = "pages.jsonl"
PLOTS_DIR = "plots"
SCATTER_CSV = "cer_vs_compression.csv"
HISTOGRAM_CSV = "cer_histogram.csv"
HISTOGRAM_BINS = 10


def write_results(out: Path, header: dict, summary: dict, timings: dict, scores: list[PageScore]) -> Path:
    """Write every file of the run; each is written whole, then renamed into place. Returns ``metrics.json``."""
    out.mkdir(parents=True, exist_ok=True)
    _write(out / METRICS_FILE, json.dumps({**header, **summary}, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    _write(out / TIMINGS_FILE, json.dumps(timings, indent=2, sort_keys=True) + "\n")
    lines = (json.dumps(score.record(), sort_keys=True, ensure_ascii=False) + "\n" for score in scores)
    _write(out / PAGES_FILE, "".join(lines))
    write_plots(out / PLOTS_DIR, scores)
    return out / METRICS_FILE


def write_plots(plots: Path, scores: list[PageScore]) -> None:
    plots.mkdir(parents=True, exist_ok=True)
    scatter = [
        {"page": s.index, "compression_ratio": round(s.compression_ratio, 6), "cer": round(s.cer, 6)}
        for s in scores
        if s.compression_ratio is not None
    ]
    _write_csv(plots / SCATTER_CSV, ["page", "compression_ratio", "cer"], scatter)
    counts = [0] * HISTOGRAM_BINS
    for score in scores:
        counts[min(int(score.cer * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
    histogram = [{"cer": f"{k / HISTOGRAM_BINS:.1f}", "pages": n} for k, n in enumerate(counts)]
    _write_csv(plots / HISTOGRAM_CSV, ["cer", "pages"], histogram)
    _draw(plots, scatter, [s.cer for s in scores])


def _draw(plots: Path, scatter: list[dict], cers: list[float]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return  # the CSV files carry the same data; `pip install dsocr[eval]` draws them
    figure, axes = pyplot.subplots(figsize=(5, 3.5))
    axes.hist(cers, bins=HISTOGRAM_BINS, range=(0, 1))
    axes.set(xlabel="CER (capped at 1.0 per page)", ylabel="pages", title="CER per page")
    figure.tight_layout()
    figure.savefig(plots / "cer_histogram.png", dpi=100, metadata={"Software": None})
    pyplot.close(figure)
    figure, axes = pyplot.subplots(figsize=(5, 3.5))
    axes.scatter([p["compression_ratio"] for p in scatter], [p["cer"] for p in scatter], s=12)
    axes.set(
        xlabel="ground-truth tokens per vision token", ylabel="CER", title="CER vs compression", ylim=(-0.02, 1.02)
    )
    figure.tight_layout()
    figure.savefig(plots / "cer_vs_compression.png", dpi=100, metadata={"Software": None})
    pyplot.close(figure)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
