"""``dsocr eval`` and ``dsocr report`` from the command line: the files they write and what they refuse."""

import json

import pytest

from dsocr.cli import main
from dsocr.data.synth import synthesize
from tests.evaluation.test_runner import two_line_dataset

TINY = ["--mode", "tiny", "--max-new-tokens"]


@pytest.fixture(scope="module")
def reader_pages(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("reader"), 2, seed=5)


@pytest.fixture
def predicted(tmp_path):
    """``data/`` (two pages) and ``pred/`` with a prediction for each: the first exact, the second half-read."""
    two_line_dataset(tmp_path / "data")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "page0.md").write_text("Hello world")
    (tmp_path / "pred" / "page1.md").write_text("Second")
    return tmp_path


def eval_predictions(folder, out: str, *extra: str) -> int:
    return main(["eval", "--data", str(folder / "data"), "--predictions", str(folder / "pred"), "--out", str(folder / out), *extra])  # fmt: skip


def eval_model(pages, model, out, tokens: str = "8", *extra: str) -> int:
    return main(["eval", "--data", str(pages), "--model", str(model), *TINY, tokens, "--out", str(out), *extra])


def metrics_of(folder):
    return json.loads((folder / "metrics.json").read_text())


def test_scoring_predictions_writes_every_result_file(predicted):
    assert eval_predictions(predicted, "out") == 0
    metrics, out = metrics_of(predicted / "out"), predicted / "out"
    assert (metrics["pages"], metrics["engine"]["kind"]) == (2, "predictions")
    assert metrics["cer"]["median"] == pytest.approx(5 / 22, abs=1e-6)  # CERs 0 and 5/11
    assert len((out / "pages.jsonl").read_text().splitlines()) == 2
    assert (out / "plots" / "cer_histogram.csv").read_text().startswith("cer,pages\n0.0,1\n")
    assert json.loads((out / "timings.json").read_text())["pages"] == 2


def test_the_same_model_and_pages_give_the_same_metrics_bytes(tmp_path, tiny_checkpoint, reader_pages):
    assert eval_model(reader_pages, tiny_checkpoint, tmp_path / "a") == eval_model(reader_pages, tiny_checkpoint, tmp_path / "b") == 0  # fmt: skip
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()


def test_the_model_is_identified_by_its_weights(tmp_path, tiny_checkpoint, reader_pages):
    eval_model(reader_pages, tiny_checkpoint, tmp_path, "4")
    metrics = metrics_of(tmp_path)
    assert set(metrics["engine"]["weights_sha256"]) == {p.name for p in tiny_checkpoint.glob("*.safetensors")}
    assert metrics["vision_tokens"] == 73  # tiny mode: 8 rows of 8 vectors + a newline per row + the separator
    assert metrics["compression_ratio"]["mean"] > 0


def test_eval_through_a_server_scores_the_same_as_in_process(tmp_path, tiny_checkpoint, reader_pages, triton_server):
    eval_model(reader_pages, tiny_checkpoint, tmp_path / "here")
    served = ["eval", "--data", str(reader_pages), "--server", triton_server.grpc_url, *TINY, "8"]
    assert main([*served, "--tokenizer", str(tiny_checkpoint), "--out", str(tmp_path / "served")]) == 0
    here, there = metrics_of(tmp_path / "here"), metrics_of(tmp_path / "served")
    assert (there["cer"], there["ned"], there["vision_tokens"]) == (here["cer"], here["ned"], here["vision_tokens"])


def test_predictions_and_a_model_together_are_refused(predicted, capsys):
    assert eval_predictions(predicted, "o", "--model", "x") == 2
    assert "cannot be combined" in capsys.readouterr().err
    assert not (predicted / "o").exists()


def test_a_folder_without_a_manifest_is_refused_by_name(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path), "--predictions", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "manifest.jsonl" in capsys.readouterr().err


def test_report_puts_each_result_on_a_row(predicted):
    for run in ("first", "second"):
        eval_predictions(predicted, run)
    table = predicted / "r.md"
    assert (
        main(["report", str(predicted / "second"), str(predicted / "first" / "metrics.json"), "--out", str(table)]) == 0
    )
    rows = table.read_text().splitlines()
    assert len(rows) == 4 and rows[2].startswith("| first | pred |") and "| 0.2273 |" in rows[2]


def test_report_refuses_a_file_that_is_not_metrics(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2
    assert "not an evaluation's metrics.json" in capsys.readouterr().err
