"""``dsocr eval --mlflow``: a run whose params say exactly what was measured, with its figures and files."""

import pytest
from mlflow import MlflowClient

from dsocr.cli import main
from dsocr.data.dataset import dataset_hash
from dsocr.model.source import weights_sha256
from tests.evaluation.test_runner import two_line_dataset

pytestmark = pytest.mark.mlflow


@pytest.fixture(scope="module")
def logged_run(mlflow_uri, tiny_checkpoint, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tracked")
    two_line_dataset(tmp_path / "data", truths=("A page only this module evaluates",))
    flags = [
        "--data",
        str(tmp_path / "data"),
        "--model",
        str(tiny_checkpoint),
        "--mode",
        "tiny",
        "--max-new-tokens",
        "4",
    ]
    assert main(["eval", *flags, "--out", str(tmp_path / "out"), "--mlflow", mlflow_uri]) == 0
    client = MlflowClient(mlflow_uri)
    [run] = client.search_runs(
        [client.get_experiment_by_name("dsocr-eval").experiment_id],
        filter_string=f"params.`dataset.sha256` = '{dataset_hash(tmp_path / 'data')}'",
    )
    return client, run, tmp_path


def test_params_name_the_weights_the_pages_the_options_and_the_code(logged_run, tiny_checkpoint):
    _, run, folder = logged_run
    params = run.data.params
    [(file, digest)] = weights_sha256(tiny_checkpoint).items()
    assert params[f"model.sha256.{file}"] == digest
    assert params["dataset.sha256"] == dataset_hash(folder / "data")
    assert (params["option.mode"], params["option.max_new_tokens"]) == ("tiny", "4")
    assert {"dsocr.version", "dsocr.git_commit"} <= set(params)


def test_metrics_are_the_summary_figures(logged_run):
    import json

    _, run, folder = logged_run
    metrics = json.loads((folder / "out" / "metrics.json").read_text())
    assert run.data.metrics["cer.mean"] == metrics["cer"]["mean"]
    assert run.data.metrics["by_tag.kind_text.ned.mean"] == metrics["by_tag"]["kind=text"]["ned"]["mean"]


def test_the_result_files_are_artifacts(logged_run):
    client, run, _ = logged_run
    names = {item.path for item in client.list_artifacts(run.info.run_id)}
    plots = {item.path for item in client.list_artifacts(run.info.run_id, "plots")}
    assert {"metrics.json", "pages.jsonl", "timings.json", "plots"} <= names
    assert "plots/cer_histogram.csv" in plots
