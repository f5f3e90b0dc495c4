"""A dataset through an engine: every manifest entry gives one score, from the Markdown the page pipeline makes."""

import json

import pytest
from PIL import Image

from dsocr.contract import OcrOptions
from dsocr.data.dataset import Dataset
from dsocr.evaluation.runner import prediction_name, recognize_dataset, score_predictions
from tests.support.scripted import ScriptedRecognizer

EOS = "<｜end▁of▁sentence｜>"


def two_line_dataset(root, truths=("Hello world", "Second page")):
    """A hand-written manifest over small blank images: the format needs nothing more."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, truth in enumerate(truths):
        Image.new("RGB", (64, 64), "white").save(root / f"page{index}.png")
        lines.append(json.dumps({"source": f"page{index}.png", "ground_truth": truth, "tags": {"kind": "text"}}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return Dataset.load(root)


def test_each_page_is_scored_on_the_clean_markdown(tmp_path):
    dataset = two_line_dataset(tmp_path)
    # The grounding tags are parsed away as in `dsocr ocr`; what is left is compared with the truth.
    recognizer = ScriptedRecognizer([("<|ref|>text<|/ref|><|det|>[[0, 0, 999, 999]]<|/det|>\nHello world" + EOS, "eos"),
                                     ("Second pag" + EOS, "eos")])  # fmt: skip
    scores = list(recognize_dataset(dataset, recognizer, OcrOptions(mode="tiny")))
    assert [(s.prediction, s.cer) for s in scores] == [("Hello world", 0.0), ("Second pag", pytest.approx(1 / 11))]


def test_a_page_still_at_the_token_limit_after_its_retry_is_a_loop(tmp_path):
    dataset = two_line_dataset(tmp_path, truths=("x",))
    recognizer = ScriptedRecognizer([("la la la", "length")])
    [score] = recognize_dataset(dataset, recognizer, OcrOptions(mode="tiny"))
    assert (score.status, score.loop, score.attempts, len(recognizer.calls)) == ("incomplete", True, 2, 2)


def test_a_recognizer_failure_fails_that_page_only(tmp_path):
    dataset = two_line_dataset(tmp_path)
    recognizer = ScriptedRecognizer([(RuntimeError("server went away"), "eos"), ("Second page" + EOS, "eos")])
    first, second = recognize_dataset(dataset, recognizer, OcrOptions(mode="tiny"))
    assert (first.status, first.cer, "server went away" in first.error) == ("failed", 1.0, True)
    assert (second.status, second.cer) == ("ok", 0.0)


def test_an_unreadable_page_is_a_failed_page(tmp_path):
    dataset = two_line_dataset(tmp_path)
    (tmp_path / "page0.png").write_bytes(b"not an image")
    scores = list(recognize_dataset(dataset, ScriptedRecognizer([("Second page" + EOS, "eos")]), OcrOptions()))
    assert [s.status for s in scores] == ["failed", "ok"]
    assert scores[0].error.startswith("render_failed")


def test_tokens_come_from_the_recognizer_and_the_tokenizer(tmp_path):
    dataset = two_line_dataset(tmp_path, truths=("abcdefgh",))
    [score] = recognize_dataset(
        dataset, ScriptedRecognizer([("abcdefgh" + EOS, "eos")]), OcrOptions(), count_tokens=lambda text: len(text)
    )
    # ScriptedRecognizer reports 100 vision tokens; the fake tokenizer counts characters.
    assert (score.vision_tokens, score.truth_tokens, score.compression_ratio) == (100, 8, 0.08)


def test_predictions_are_read_by_source_name(tmp_path):
    dataset = two_line_dataset(tmp_path / "data")
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    (predictions / "page0.md").write_text("Hello world")
    (predictions / "page1.md").write_text("Second page!")
    scores = list(score_predictions(dataset, predictions))
    assert [s.cer for s in scores] == [0.0, pytest.approx(1 / 11)]


def test_a_missing_prediction_is_a_failed_page_that_names_the_file(tmp_path):
    dataset = two_line_dataset(tmp_path / "data", truths=("Hello",))
    (tmp_path / "predictions").mkdir()
    [score] = score_predictions(dataset, tmp_path / "predictions")
    assert (score.status, score.cer) == ("failed", 1.0)
    assert "page0.md" in score.error


def test_pdf_pages_are_predicted_in_files_named_by_page():
    from dsocr.data.dataset import PageEntry

    assert prediction_name(PageEntry(source="docs/report.pdf", page=3, ground_truth="")) == "docs/report_3.md"
    assert prediction_name(PageEntry(source="images/0001.png", ground_truth="")) == "images/0001.md"
