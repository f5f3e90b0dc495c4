"""The promotion gate: a candidate takes an alias only if it is not worse than the version holding it.

Both versions are measured on the same golden dataset with the same options; an evaluation already logged for
the same pages, weights and options (``dsocr.eval_key``) is reused rather than run again. Mean CER and mean
normalized edit distance may rise by at most ``max_regression``; the loop rate may not rise at all.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from dsocr.contract import OcrOptions
from dsocr.data.dataset import Dataset
from dsocr.registry.registry import Version, champion, set_alias
from dsocr.tracking import EVAL_EXPERIMENT, EVAL_KEY_TAG, eval_key, log_evaluation, mlflow_client

GATED = ("cer.mean", "ned.mean", "loop_rate")


@dataclass(frozen=True)
class Figures:
    version: Version
    cer: float
    ned: float
    loop_rate: float
    run_id: str

    def line(self, role: str) -> str:
        return (
            f"{role:<9} {self.version.name} v{self.version.version}: CER {self.cer:.4f}  NED {self.ned:.4f}  "
            f"loops {self.loop_rate:.1%}  (run {self.run_id})"
        )


@dataclass(frozen=True)
class Decision:
    promoted: bool
    candidate: Figures
    champion: Figures | None
    reasons: list[str]  # why it was refused; empty when promoted


def promote(
    uri: str | None,
    candidate: Version,
    alias: str,
    dataset: Dataset,
    options: OcrOptions,
    max_regression: float = 0.005,
    progress: bool | None = None,
) -> Decision:
    """Evaluate (or look up) the candidate and the alias's holder on ``dataset``; move the alias if the gate passes."""
    holder = champion(uri, candidate.name, alias)
    candidate_figures = figures(uri, candidate, dataset, options, progress)
    if holder is None or holder.version == candidate.version:
        set_alias(uri, candidate, alias)
        return Decision(True, candidate_figures, None, [])
    holder_figures = figures(uri, holder, dataset, options, progress)
    reasons = []
    for metric in ("cer", "ned"):
        new, old = getattr(candidate_figures, metric), getattr(holder_figures, metric)
        if new > old + max_regression:
            reasons.append(f"{metric.upper()} {new:.4f} > {old:.4f} + {max_regression:g}")
    if candidate_figures.loop_rate > holder_figures.loop_rate:
        reasons.append(f"loop rate {candidate_figures.loop_rate:.1%} > {holder_figures.loop_rate:.1%}")
    if not reasons:
        set_alias(uri, candidate, alias)
    return Decision(not reasons, candidate_figures, holder_figures, reasons)


def figures(uri: str | None, version: Version, dataset: Dataset, options: OcrOptions, progress: bool | None) -> Figures:
    """The version's gated figures on ``dataset``: from a matching logged evaluation, else measured now."""
    options_record = options.model_dump(mode="json")
    key = eval_key(dataset.hash(), version.weights or {"hub": version.hub_spec}, options_record)
    client = mlflow_client(uri)
    experiment = client.get_experiment_by_name(EVAL_EXPERIMENT)
    runs = []
    if experiment is not None:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{EVAL_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    run_id = runs[0].info.run_id if runs else _evaluate(uri, version, dataset, options, progress)
    metrics = client.get_run(run_id).data.metrics
    return Figures(version, metrics["cer.mean"], metrics["ned.mean"], metrics["loop_rate"], run_id)


def _evaluate(uri: str | None, version: Version, dataset: Dataset, options: OcrOptions, progress: bool | None) -> str:
    from dsocr.evaluation.runner import evaluate, recognize_dataset, token_counter
    from dsocr.model.inference import OcrModel
    from dsocr.model.source import weights_sha256
    from dsocr.registry.registry import resolve_model_uri

    model = OcrModel.load(resolve_model_uri(f"models:/{version.name}/{version.version}", uri))
    engine = {
        "kind": "model",
        "id": f"models:/{version.name}/{version.version}",
        "revision": model.source.revision,
        # A hub model's key is its pinned id, as ``figures`` looks it up; a checkpoint's, its weights.
        "weights_sha256": weights_sha256(model.source.path) if version.weights else {"hub": version.hub_spec},
    }
    scores = recognize_dataset(dataset, model, options, count_tokens=token_counter(model.tokenizer))
    evaluation = evaluate(dataset, scores, engine, options, progress)
    with tempfile.TemporaryDirectory(prefix="dsocr-gate-") as scratch:
        evaluation.write(Path(scratch))
        tags = {"dsocr.registered_model": version.name, "dsocr.model_version": version.version}
        return log_evaluation(uri, evaluation, Path(scratch), tags=tags)
