"""``dsocr report``: evaluation results side by side, one Markdown table row per ``metrics.json``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from dsocr.evaluation.outputs import METRICS_FILE

COLUMNS = (
    "run", "model", "mode", "dataset", "pages", "CER mean", "CER median", "CER p90", "WER mean", "NED mean",
    "loops", "failed", "vision tokens", "compression",
)  # fmt: skip


def add_report(parser: argparse.ArgumentParser) -> None:
    parser.description = "Write a Markdown table of `dsocr eval` results (folders or their metrics.json files)."
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULT", help="an eval --out folder or metrics.json")
    parser.add_argument("--out", type=Path, default=None, help="write the table here (default: stdout)")
    parser.set_defaults(run=_run_report)


def report_table(results: list[Path]) -> str:
    """One row per result, named by its folder relative to the folder all results share (``model/dataset``)."""
    files = sorted(path / METRICS_FILE if path.is_dir() else path for path in results)
    shared = Path(os.path.commonpath([file.parent.resolve() for file in files])) if len(files) > 1 else None
    rows = [_row(file, _run_name(file, shared)) for file in files]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _run_name(file: Path, shared: Path | None) -> str:
    folder = file.parent.resolve()
    return folder.name if shared is None or folder == shared else folder.relative_to(shared).as_posix()


def _row(file: Path, run: str) -> list[str]:
    try:
        return _cells(run, json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        raise ValueError(f"{file}: not an evaluation's metrics.json ({error})") from None
    except (KeyError, TypeError) as error:
        raise ValueError(f"{file}: not an evaluation's metrics.json (no {error})") from None


def _cells(run: str, metrics: dict) -> list[str]:
    engine, options = metrics.get("engine") or {}, metrics.get("options") or {}
    compression = (metrics.get("compression_ratio") or {}).get("mean")
    return [
        run,
        str(engine.get("id", "")),
        str(options.get("mode", "")),
        f"{metrics['dataset']['name']} ({metrics['dataset']['sha256'][:12]})",
        str(metrics["pages"]),
        *(f"{metrics[name][stat]:.4f}" for name, stat in (("cer", "mean"), ("cer", "median"), ("cer", "p90"))),
        f"{metrics['wer']['mean']:.4f}",
        f"{metrics['ned']['mean']:.4f}",
        f"{metrics['loop_rate']:.1%}",
        f"{metrics['failed_rate']:.1%}",
        "" if metrics.get("vision_tokens") is None else f"{metrics['vision_tokens']:.0f}",
        "" if compression is None else f"{compression:.2f}",
    ]


def _run_report(args: argparse.Namespace) -> int:
    table = report_table(args.results)
    if args.out is None:
        print(table, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table, encoding="utf-8")
    return 0
