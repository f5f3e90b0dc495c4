"""``dsocr train --mlflow``: the run's settings, loss curve, weight digests and lineage on a real MLflow server."""

import pytest
from mlflow import MlflowClient

from dsocr.data.synth import synthesize
from dsocr.model.source import weights_sha256
from dsocr.training.config import TrainConfig
from dsocr.training.trainer import train

pytestmark = pytest.mark.mlflow


@pytest.fixture(scope="module")
def tracked_run(mlflow_uri, tiny_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracked-train")
    pages = synthesize(folder / "pages", pages=2, seed=9)
    settings = {"model": str(tiny_checkpoint), "data": str(pages), "out": str(folder / "run"), "steps": 3, "batch": 1}
    train(TrainConfig(**settings, lora_rank=4, mlflow=mlflow_uri), progress=False)
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("dsocr-train")
    [run] = client.search_runs([experiment.experiment_id], filter_string=f"params.out = '{folder / 'run'}'")
    return client, run, folder / "run"


def test_every_setting_is_a_param(tracked_run):
    _, run, _ = tracked_run
    assert (run.data.params["lora_rank"], run.data.params["steps"], run.data.params["batch"]) == ("4", "3", "1")
    assert "dsocr.version" in run.data.params


def test_the_loss_is_logged_at_every_step(tracked_run):
    client, run, _ = tracked_run
    assert [point.step for point in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]


def test_the_final_weights_digests_and_lineage_are_recorded(tracked_run):
    client, run, out = tracked_run
    assert {
        f"dsocr.sha256.{name}": digest for name, digest in weights_sha256(out).items()
    }.items() <= run.data.tags.items()
    assert "lineage.json" in {item.path for item in client.list_artifacts(run.info.run_id)}
    assert run.info.status == "FINISHED"
