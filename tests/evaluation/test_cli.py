"""``dsocr eval`` and ``dsocr report`` from the command line: the files they write and what they refuse."""

import json

import pytest

from dsocr.cli import main
from dsocr.data.synth import synthesize
from tests.evaluation.test_runner import two_line_dataset


@pytest.fixture(scope="module")
def reader_pages(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("reader"), 2, seed=5)


def test_scoring_predictions_writes_every_result_file(tmp_path):
    two_line_dataset(tmp_path / "data")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "page0.md").write_text("Hello world")
    (tmp_path / "pred" / "page1.md").write_text("Second")
    assert (
        main(
            [
                "eval",
                "--data",
                str(tmp_path / "data"),
                "--predictions",
                str(tmp_path / "pred"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["pages"], metrics["cer"]["median"], metrics["engine"]["kind"]) == (
        2,
        pytest.approx(5 / 22, abs=1e-6),
        "predictions",
    )
    assert len((tmp_path / "out" / "pages.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "out" / "plots" / "cer_histogram.csv").read_text().startswith("cer,pages\n0.0,1\n")
    assert json.loads((tmp_path / "out" / "timings.json").read_text())["pages"] == 2


def test_the_same_model_and_pages_give_the_same_metrics_bytes(tmp_path, tiny_checkpoint, reader_pages):
    flags = [
        "eval",
        "--data",
        str(reader_pages),
        "--model",
        str(tiny_checkpoint),
        "--mode",
        "tiny",
        "--max-new-tokens",
        "8",
    ]
    assert main([*flags, "--out", str(tmp_path / "a")]) == main([*flags, "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()


def test_the_model_is_identified_by_its_weights(tmp_path, tiny_checkpoint, reader_pages):
    main(
        [
            "eval",
            "--data",
            str(reader_pages),
            "--model",
            str(tiny_checkpoint),
            "--mode",
            "tiny",
            "--max-new-tokens",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["engine"]["weights_sha256"]) == {p.name for p in tiny_checkpoint.glob("*.safetensors")}
    assert metrics["vision_tokens"] == 73  # tiny mode: 8 rows of 8 vectors + a newline per row + the separator
    assert metrics["compression_ratio"]["mean"] > 0


def test_eval_through_a_server_scores_the_same_as_in_process(tmp_path, tiny_checkpoint, reader_pages, triton_server):
    options = ["--mode", "tiny", "--max-new-tokens", "8"]
    main(
        [
            "eval",
            "--data",
            str(reader_pages),
            "--model",
            str(tiny_checkpoint),
            *options,
            "--out",
            str(tmp_path / "here"),
        ]
    )
    served = ["eval", "--data", str(reader_pages), "--server", triton_server.grpc_url, *options]
    assert main([*served, "--tokenizer", str(tiny_checkpoint), "--out", str(tmp_path / "served")]) == 0
    here, there = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("here", "served"))
    assert (there["cer"], there["ned"], there["vision_tokens"]) == (here["cer"], here["ned"], here["vision_tokens"])


def test_predictions_and_a_model_together_are_refused(tmp_path, capsys):
    two_line_dataset(tmp_path / "data")
    (tmp_path / "pred").mkdir()
    code = main(
        [
            "eval",
            "--data",
            str(tmp_path / "data"),
            "--predictions",
            str(tmp_path / "pred"),
            "--model",
            "x",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "cannot be combined" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_folder_without_a_manifest_is_refused_by_name(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path), "--predictions", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "manifest.jsonl" in capsys.readouterr().err


def test_report_puts_each_result_on_a_row(tmp_path, capsys):
    two_line_dataset(tmp_path / "data")
    (tmp_path / "pred").mkdir()
    for run in ("first", "second"):
        main(
            [
                "eval",
                "--data",
                str(tmp_path / "data"),
                "--predictions",
                str(tmp_path / "pred"),
                "--out",
                str(tmp_path / run),
            ]
        )
    assert (
        main(
            [
                "report",
                str(tmp_path / "second"),
                str(tmp_path / "first" / "metrics.json"),
                "--out",
                str(tmp_path / "r.md"),
            ]
        )
        == 0
    )
    rows = (tmp_path / "r.md").read_text().splitlines()
    assert len(rows) == 4 and rows[2].startswith("| first | pred |") and "| 1.0000 |" in rows[2]


def test_report_refuses_a_file_that_is_not_metrics(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2
    assert "not an evaluation's metrics.json" in capsys.readouterr().err
