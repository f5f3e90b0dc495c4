"""MLflow runs for evaluations: parameters that say exactly what was measured, the figures, and the files.

The tracking URI is ``--mlflow URI``, else ``MLFLOW_TRACKING_URI``, else a SQLite store in the user's state
directory (MLflow's recommended backend; never the working directory). Evaluation runs carry the tags the
registry's gate looks them up by (``dsocr.eval_key``), so a candidate already evaluated on a dataset is not
evaluated again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from dsocr.provenance import dsocr_version, git_commit

EVAL_EXPERIMENT = "dsocr-eval"
#: Tag of an evaluation run: a digest of the dataset, the model's weights and the options, nothing else.
EVAL_KEY_TAG = "dsocr.eval_key"
_METRIC_NAME = re.compile(r"[^0-9A-Za-z_\-. /]")


def tracking_uri(uri: str | None = None) -> str:
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "dsocr"
    state.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{state / 'mlflow.sqlite3'}"


class TrackingError(ValueError):
    """The tracking server refused a request or could not be reached; the message is MLflow's."""


@contextlib.contextmanager
def mlflow_errors() -> Iterator[None]:
    """MLflow's exceptions (an unreachable server, a bad name) as a ``TrackingError`` with one line for people."""
    try:
        yield
    except Exception as error:
        if not type(error).__module__.startswith(("mlflow", "requests", "urllib3")):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackingError(f"MLflow: {message}") from None


def mlflow_client(uri: str | None = None):
    """An ``MlflowClient`` on the tracking URI, with ``mlflow``'s module-level functions pointed at it too."""
    # MLflow's defaults retry an unreachable server for minutes; a command should fail within about a minute.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # dsocr prints what it did itself: no run URLs on stdout, no per-file download bars.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        import mlflow
        from mlflow import MlflowClient
    except ImportError:
        raise ValueError("MLflow is not installed: pip install 'dsocr[eval]'") from None
    uri = tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def eval_key(dataset_sha256: str, weights: dict | None, options: dict | None) -> str:
    """What makes two evaluations the same measurement: the pages, the weights and every generation option."""
    identity = {"dataset": dataset_sha256, "weights": weights, "options": options}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def log_evaluation(uri: str | None, evaluation, out: Path, tags: dict[str, str] | None = None) -> str:
    """One run in the ``dsocr-eval`` experiment: params, metrics, ``metrics.json``, ``pages.jsonl``, plots."""
    client = mlflow_client(uri)
    header = evaluation.header
    experiment = client.get_experiment_by_name(EVAL_EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EVAL_EXPERIMENT)
    engine = header["engine"]
    run_tags = {
        EVAL_KEY_TAG: eval_key(header["dataset"]["sha256"], engine.get("weights_sha256"), header["options"]),
        "dsocr.dataset_sha256": header["dataset"]["sha256"],
        **(tags or {}),
    }
    run = client.create_run(experiment_id, tags=run_tags, run_name=f"{engine.get('id')} on {header['dataset']['name']}")
    run_id = run.info.run_id
    try:
        figures = {**evaluation.summary, "pages_per_second": evaluation.timings["pages_per_second"]}
        log_values(client, run_id, evaluation_params(header), metric_values(figures))
        for name in ("metrics.json", "timings.json", "pages.jsonl"):
            client.log_artifact(run_id, str(out / name))
        client.log_artifacts(run_id, str(out / "plots"), "plots")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def log_values(client, run_id: str, params: dict[str, str], metrics: dict[str, float], step: int = 0) -> None:
    """Params and metrics in batches of MLflow's per-request limits (100 params, 1,000 metrics)."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    params_list = [Param(key, value) for key, value in params.items()]
    metrics_list = [Metric(key, value, now, step) for key, value in metrics.items()]
    for start in range(0, len(params_list), 100):
        client.log_batch(run_id, params=params_list[start : start + 100])
    for start in range(0, len(metrics_list), 1000):
        client.log_batch(run_id, metrics=metrics_list[start : start + 1000])


def evaluation_params(header: dict) -> dict[str, str]:
    """The run's parameters, flat: model id, revision, weight SHA-256s, lineage, options, dataset, code version."""
    engine = header["engine"]
    params = {
        "model.id": engine.get("id"),
        "model.kind": engine.get("kind"),
        "model.revision": engine.get("revision"),
        "dataset.name": header["dataset"]["name"],
        "dataset.sha256": header["dataset"]["sha256"],
        "dataset.pages": header["dataset"]["pages"],
        "dsocr.version": dsocr_version(),
        "dsocr.git_commit": git_commit(),
    }
    for name, digest in (engine.get("weights_sha256") or {}).items():
        params[f"model.sha256.{name}"] = digest
    for key, value in (engine.get("lineage") or {}).items():
        params[f"model.lineage.{key}"] = value
    for key, value in (header["options"] or {}).items():
        params[f"option.{key}"] = value
    return {key: str(value) for key, value in params.items() if value is not None}


def metric_values(summary: dict, prefix: str = "") -> dict[str, float]:
    """Every number of the summary as ``cer.mean``, ``by_tag.kind_reader.cer.mean``…; lists and None left out."""
    values = {}
    for key, value in summary.items():
        name = prefix + _METRIC_NAME.sub("_", str(key))
        if isinstance(value, dict):
            values.update(metric_values(value, name + "."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            values[name] = float(value)
    return values
