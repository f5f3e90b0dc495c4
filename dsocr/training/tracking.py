"""Where a run's parameters and loss curve go besides ``train_log.jsonl``: nowhere, or an MLflow server.

MLflow is optional (``--mlflow URI`` needs ``pip install mlflow``); the evaluation issue adds the model registry.
"""

from __future__ import annotations

from pathlib import Path

from dsocr.model.source import weights_sha256


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
        try:
            import mlflow
        except ImportError:
            raise ValueError("--mlflow needs MLflow: pip install mlflow") from None
        self.mlflow = mlflow
        mlflow.set_tracking_uri(uri)

    def start(self, config, total_steps: int) -> None:
        self.mlflow.set_experiment("dsocr-train")
        self.run = self.mlflow.start_run()
        self.mlflow.log_params({**config.model_dump(mode="json"), "total_steps": total_steps})

    def log_step(self, entry: dict) -> None:
        metrics = {"loss": entry["loss"], "lr": entry["lr"]}
        for key, value in (entry.get("eval") or {}).items():
            metrics[f"eval_{key}"] = value
        self.mlflow.log_metrics(metrics, step=entry["step"])

    def finish(self, out: Path) -> None:
        for name, digest in weights_sha256(out).items():
            self.mlflow.set_tag(f"weights_sha256.{name}", digest)
        self.mlflow.log_artifact(str(out / "lineage.json"))

    def __exit__(self, *exc) -> None:
        self.mlflow.end_run(status="FAILED" if exc[0] else "FINISHED")


def open_tracker(config) -> Tracker:
    return MlflowTracker(config.mlflow) if config.mlflow else Tracker()
