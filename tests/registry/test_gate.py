"""The promotion gate on a real MLflow server: the alias moves only to a version not worse on the golden set.

What a candidate reads is scripted (a random checkpoint reads nothing), and logged as ``dsocr eval --mlflow``
would log it, under the version's weights; the gate finds those runs by dataset, weights and options.
"""

import pytest
from mlflow import MlflowClient

from dsocr.cli import main
from dsocr.contract import OcrOptions
from dsocr.evaluation.runner import evaluate, recognize_dataset
from dsocr.model.tiny import write_tiny_checkpoint
from dsocr.registry.registry import get_version, register
from dsocr.tracking import log_evaluation
from tests.evaluation.test_runner import two_line_dataset
from tests.support.scripted import ScriptedRecognizer

pytestmark = pytest.mark.mlflow
EOS = "<｜end▁of▁sentence｜>"
TRUTHS = ("Hello world", "Second page")


@pytest.fixture
def golden(tmp_path):
    return two_line_dataset(tmp_path / "golden", TRUTHS)


def candidate(uri, name, folder, seed, outputs, golden):
    """Register a checkpoint of its own weights and log what it 'reads' on the golden set."""
    version = register(uri, name, str(write_tiny_checkpoint(folder / f"seed{seed}", seed=seed)))
    scores = recognize_dataset(golden, ScriptedRecognizer(outputs), OcrOptions())
    engine = {"kind": "model", "id": f"models:/{name}/{version.version}", "weights_sha256": version.weights}
    evaluation = evaluate(golden, scores, engine, OcrOptions(), progress=False)
    evaluation.write(folder / f"eval{seed}")
    log_evaluation(uri, evaluation, folder / f"eval{seed}")
    return version


def promote(uri, name, version, golden, *extra):
    return main(
        ["registry", "promote", name, "--version", version, "--data", str(golden.root), "--mlflow", uri, *extra]
    )


def champion_version(uri, name):
    return get_version(uri, name, alias="champion").version


def read(*texts, finish="eos"):
    return [(text + (EOS if finish == "eos" else ""), finish) for text in texts]


def test_the_first_version_becomes_champion(mlflow_uri, model_name, tmp_path, golden):
    candidate(mlflow_uri, model_name, tmp_path, 0, read("Hello world", "Second"), golden)
    assert promote(mlflow_uri, model_name, "1", golden) == 0
    assert champion_version(mlflow_uri, model_name) == "1"


def test_a_worse_candidate_is_refused_and_both_figures_printed(mlflow_uri, model_name, tmp_path, golden, capsys):
    candidate(mlflow_uri, model_name, tmp_path, 0, read(*TRUTHS), golden)  # CER 0
    candidate(mlflow_uri, model_name, tmp_path, 1, read("Hello", "Second"), golden)  # CER 0.5 on both pages
    promote(mlflow_uri, model_name, "1", golden)
    capsys.readouterr()
    assert promote(mlflow_uri, model_name, "2", golden) == 1
    out = capsys.readouterr().out
    assert "candidate" in out and f"{model_name} v2: CER 0.5000" in out and f"{model_name} v1: CER 0.0000" in out
    assert "refused: CER 0.5000 > 0.0000 + 0.005" in out
    assert champion_version(mlflow_uri, model_name) == "1"


def test_a_better_candidate_takes_the_alias(mlflow_uri, model_name, tmp_path, golden):
    candidate(mlflow_uri, model_name, tmp_path, 0, read("Hello", "Second"), golden)
    candidate(mlflow_uri, model_name, tmp_path, 1, read(*TRUTHS), golden)
    promote(mlflow_uri, model_name, "1", golden)
    assert promote(mlflow_uri, model_name, "2", golden) == 0
    assert champion_version(mlflow_uri, model_name) == "2"


def test_a_regression_within_the_tolerance_passes(mlflow_uri, model_name, tmp_path, golden):
    candidate(mlflow_uri, model_name, tmp_path, 0, read(*TRUTHS), golden)
    candidate(mlflow_uri, model_name, tmp_path, 1, read("Hello worl", "Second page"), golden)  # CER mean 1/22
    promote(mlflow_uri, model_name, "1", golden)
    assert promote(mlflow_uri, model_name, "2", golden, "--max-regression", "0.05") == 0


def test_more_loops_are_refused_even_with_a_better_cer(mlflow_uri, model_name, tmp_path, golden, capsys):
    candidate(mlflow_uri, model_name, tmp_path, 0, read("Hello", "Second"), golden)
    # The candidate reads better but its second page runs into the token limit, on its retry too.
    looping = read("Hello world") + read("Second page", "Second page", finish="length")
    candidate(mlflow_uri, model_name, tmp_path, 1, looping, golden)
    promote(mlflow_uri, model_name, "1", golden)
    assert promote(mlflow_uri, model_name, "2", golden) == 1
    assert "loop rate 50.0% > 0.0%" in capsys.readouterr().out
    assert champion_version(mlflow_uri, model_name) == "1"


def test_a_version_never_evaluated_is_evaluated_once_and_the_run_reused(mlflow_uri, model_name, tmp_path, golden):
    register(mlflow_uri, model_name, str(write_tiny_checkpoint(tmp_path / "random", seed=7)))
    client = MlflowClient(mlflow_uri)
    options = ["--mode", "tiny", "--max-new-tokens", "4"]

    def gate_runs():
        experiment = client.get_experiment_by_name("dsocr-eval")
        return client.search_runs([experiment.experiment_id], f"tags.`dsocr.registered_model` = '{model_name}'")

    assert promote(mlflow_uri, model_name, "1", golden, *options) == 0
    assert promote(mlflow_uri, model_name, "1", golden, *options) == 0
    [run] = gate_runs()
    assert run.data.metrics["cer.mean"] > 0.5  # random weights read (almost) nothing
