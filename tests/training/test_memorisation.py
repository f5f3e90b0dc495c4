"""The ladder's first rung: trained from random weights on the CPU, the tiny model memorises a few pages.

Every page gets the same prompt, so only by reading its image can the model tell which answer belongs to it.
"""

import statistics
import subprocess
import sys

import pytest

from dsocr.contract import OcrOptions
from dsocr.data.dataset import Dataset
from dsocr.data.synth import synthesize
from dsocr.evaluation.metrics import character_error_rate
from dsocr.model.inference import OcrModel

PAGES = 4


@pytest.mark.slow
def test_four_tiny_pages_are_memorised_to_a_cer_of_at_most_5_percent(tiny_checkpoint, tmp_path):
    pages = synthesize(tmp_path / "pages", PAGES, seed=7)
    dataset = Dataset.load(pages)
    assert len({e.ground_truth for e in dataset.entries}) == PAGES
    # In a process of its own, as users run it: the run's arithmetic then depends on nothing earlier tests did.
    flags = ["--full", "--steps=300", f"--batch={PAGES}", "--lr=1e-3", "--warmup-steps=20", "--min-lr-ratio=0.1"]
    command = [sys.executable, "-c", "from dsocr.cli import main; raise SystemExit(main())", "train", *flags]
    command += ["--model", str(tiny_checkpoint), "--data", str(pages), "--out", str(tmp_path / "run")]
    subprocess.run(command, check=True, capture_output=True)

    reader = OcrModel.load(str(tmp_path / "run"))  # the saved bf16 checkpoint, as dsocr ocr loads it
    errors = [
        character_error_rate(
            reader.recognize(dataset.open_page(i), OcrOptions(mode="tiny", prompt="free", max_new_tokens=32)).text,
            entry.ground_truth,
        )
        for i, entry in enumerate(dataset.entries)
    ]
    assert statistics.fmean(errors) <= 0.05, errors
