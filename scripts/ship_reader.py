"""Copy the tiny reader the DVC pipeline trained into the package, with what its evaluation measured.

Run by ``make reader`` after ``dvc repro``: ``models/tiny-reader`` (the ``reader`` stage's output) becomes
``dsocr/samples/reader/checkpoint/`` (what ``dsocr checkpoint reader`` writes), page 1 of ``reader-train`` its demo
page, and the CERs of ``results/eval/tiny-reader/*/metrics.json`` its ``summary.json``; the training curve goes to
``benchmarks/results/tiny_reader_training.{json,png}``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from dsocr.data.dataset import Dataset  # noqa: E402
from dsocr.model.checkpoint import load_model  # noqa: E402
from dsocr.model.reader import CHECKPOINT, DEMO_PAGE, SUMMARY  # noqa: E402
from dsocr.model.source import LINEAGE_FILE, write_lineage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "models" / "tiny-reader"
RESULTS = ROOT / "benchmarks" / "results"
#: Written by the run for its own use, not part of the checkpoint users load.
NOT_SHIPPED = {"train_log.jsonl"}


def cer_of(dataset: str) -> dict:
    metrics = json.loads((ROOT / "results" / "eval" / "tiny-reader" / dataset / "metrics.json").read_text())
    return {
        "dataset": dataset,
        "sha256": metrics["dataset"]["sha256"],
        "pages": metrics["pages"],
        "cer_mean": metrics["cer"]["mean"],
        "cer_median": metrics["cer"]["median"],
        "loop_rate": metrics["loop_rate"],
        "options": metrics["options"],
    }


def main() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    lineage = json.loads((RUN / "lineage.json").read_text())
    log = [json.loads(line) for line in (RUN / "train_log.jsonl").read_text().splitlines()]

    shutil.rmtree(CHECKPOINT, ignore_errors=True)
    CHECKPOINT.mkdir(parents=True)
    for file in RUN.iterdir():
        if file.is_file() and file.name not in NOT_SHIPPED | {LINEAGE_FILE}:
            shutil.copy2(file, CHECKPOINT / file.name)
    # The run names its base by absolute path; shipped, it is named as params.yaml does, from the repository root.
    base = Path(lineage["base"]["model_id"])
    if base.is_absolute() and base.is_relative_to(ROOT):
        lineage["base"]["model_id"] = base.relative_to(ROOT).as_posix()
    write_lineage(CHECKPOINT, lineage)
    train = Dataset.load(ROOT / "data" / "eval" / "reader-train")
    shutil.copy2(train.root / train.entries[0].source, DEMO_PAGE)

    summary = {
        "parameters": sum(p.numel() for p in load_model(CHECKPOINT).parameters()),
        "recipe": params["reader"],
        "training": cer_of("reader-train"),
        "held_out": cer_of("synth-reader"),
        "steps": lineage["steps"],
        "final_loss": lineage["final_loss"],
        "train_seconds": log[-1]["elapsed_s"],
        "demo_page": {"source": train.entries[0].source, "ground_truth": train.entries[0].ground_truth},
    }
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    evaluated = [entry for entry in log if "eval" in entry]
    curve = {
        **summary,
        "steps_log": [{"step": e["step"], "loss": e["loss"], "lr": e["lr"], "elapsed_s": e["elapsed_s"]} for e in log],
        "held_out_log": [{"step": e["step"], **e["eval"]} for e in evaluated],
    }
    (RESULTS / "tiny_reader_training.json").write_text(json.dumps(curve, indent=2) + "\n", encoding="utf-8")

    figure, (loss_axis, cer_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot([e["step"] for e in log], [e["loss"] for e in log], label="training loss (its 16 pages)")
    loss_axis.plot([e["step"] for e in evaluated], [e["eval"]["loss"] for e in evaluated], "o-", label="held-out loss")
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("answer loss per token")
    loss_axis.legend()
    cer_axis.plot([e["step"] for e in evaluated], [e["eval"]["cer"] for e in evaluated], "o-", label="held-out CER")
    cer_axis.axhline(summary["training"]["cer_mean"], color="green", linestyle="--", label="training pages, final")
    cer_axis.set_ylim(0, 1.05)
    cer_axis.set_xlabel("step")
    cer_axis.set_ylabel("CER")
    cer_axis.legend()
    figure.suptitle(f"tiny reader: {summary['parameters']:,} parameters, 2 CPU cores, {summary['train_seconds']:.0f} s")
    figure.tight_layout()
    figure.savefig(RESULTS / "tiny_reader_training.png", dpi=100)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
