"""The tiny reader: the tiny architecture trained here by the DVC pipeline's ``reader`` stage, shipped with dsocr.

``samples/reader/checkpoint/`` is that stage's output (1.3 MB: bf16 weights, config, tokenizer, ``lineage.json``;
not its ``train_log.jsonl``); ``make reader`` trains it again and refreshes the copy. What it reads is measured by the
pipeline's evaluation (``results/report.md``) and stated in the README and docs/training.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dsocr.model.source import LINEAGE_FILE, CheckpointError, read_lineage

SHIPPED = Path(__file__).resolve().parents[1] / "samples" / "reader"
CHECKPOINT = SHIPPED / "checkpoint"
#: Page 1 of its training set (the pipeline's ``reader-train``): the demo's page when no real model is at hand.
DEMO_PAGE = SHIPPED / "demo-page.png"
#: Its measured CER on its training pages and on held-out pages, from the pipeline's metrics (``make reader``).
SUMMARY = SHIPPED / "summary.json"


class ReaderMissing(CheckpointError):
    """The package holds no trained reader (an install that left out its package data)."""


def write_reader_checkpoint(directory: str | Path) -> Path:
    """Copy the shipped tiny reader into ``directory`` (created if missing) and return it."""
    if read_lineage(CHECKPOINT) is None or not any(CHECKPOINT.glob("*.safetensors")):
        raise ReaderMissing(
            f"{CHECKPOINT} holds no trained reader (weights and {LINEAGE_FILE}); `make reader` makes one"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for file in CHECKPOINT.iterdir():
        shutil.copyfile(file, directory / file.name)
    return directory


def describe_reader() -> str:
    """What the reader is and what it reads, as measured: one line for people who are about to see its output."""
    summary = json.loads(SUMMARY.read_text(encoding="utf-8"))
    return (
        f"the tiny reader, {summary['parameters']:,} parameters trained here from random weights on "
        f"{summary['training']['pages']} synthetic pages; CER {summary['training']['cer_mean']:.3f} on those pages, "
        f"{summary['held_out']['cer_mean']:.3f} on {summary['held_out']['pages']} held-out pages of the same kind"
    )
