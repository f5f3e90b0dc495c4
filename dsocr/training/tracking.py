"""Where a run's parameters and loss curve go besides ``train_log.jsonl``: nowhere, or MLflow.

With ``--mlflow URI`` a run in the ``dsocr-train`` experiment gets every setting, the code version, the loss and
learning rate per step (and the held-out figures when there are any), the final weights' SHA-256s and
``lineage.json``, logged as ``dsocr eval --mlflow`` logs an evaluation (``dsocr.tracking``).
"""

from __future__ import annotations

from pathlib import Path

from dsocr.model.source import weights_sha256
from dsocr.provenance import dsocr_version, git_commit
from dsocr.tracking import log_values, metric_values, mlflow_client, mlflow_errors

TRAIN_EXPERIMENT = "dsocr-train"


class Tracker:
    """Tracks nothing; the interface a tracker implements."""

    def start(self, config, total_steps: int) -> None:
        pass

    def log_step(self, entry: dict) -> None:
        pass

    def finish(self, out: Path) -> None:
        pass

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        pass


class MlflowTracker(Tracker):
    def __init__(self, uri: str):
        with mlflow_errors():
            self.client = mlflow_client(uri)

    def start(self, config, total_steps: int) -> None:
        with mlflow_errors():
            experiment = self.client.get_experiment_by_name(TRAIN_EXPERIMENT)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(TRAIN_EXPERIMENT)
            self.run_id = self.client.create_run(experiment_id, run_name=Path(config.out).name).info.run_id
            settings = {key: str(value) for key, value in config.model_dump(mode="json").items() if value is not None}
            code = {"dsocr.version": dsocr_version(), "dsocr.git_commit": git_commit()}
            params = {**settings, "total_steps": str(total_steps), **{k: str(v) for k, v in code.items() if v}}
            log_values(self.client, self.run_id, params, {})

    def log_step(self, entry: dict) -> None:
        figures = {"loss": entry["loss"], "lr": entry["lr"], "eval": entry.get("eval") or {}}
        with mlflow_errors():
            log_values(self.client, self.run_id, {}, metric_values(figures), step=entry["step"])

    def finish(self, out: Path) -> None:
        with mlflow_errors():
            for name, digest in weights_sha256(out).items():
                self.client.set_tag(self.run_id, f"dsocr.sha256.{name}", digest)
            self.client.log_artifact(self.run_id, str(out / "lineage.json"))

    def __exit__(self, *exc) -> None:
        if hasattr(self, "run_id"):
            self.client.set_terminated(self.run_id, "FAILED" if exc[0] else "FINISHED")


def open_tracker(config) -> Tracker:
    return MlflowTracker(config.mlflow) if config.mlflow else Tracker()
