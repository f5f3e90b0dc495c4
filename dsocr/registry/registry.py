"""The model registry on MLflow: versions that carry their lineage, aliases moved only past an accuracy gate.

A registered checkpoint directory is copied into the run's artifacts (the registry owns its bytes, so the
``@champion`` being served cannot change under it) and its weight SHA-256s are tagged on the version; a hub model
is registered by id and revision. Aliases (``champion``), not MLflow's deprecated stages, name what serves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from dsocr.model.source import HUB_ID, file_sha256, lineage_summary, read_lineage, weights_sha256
from dsocr.tracking import mlflow_client

REGISTER_EXPERIMENT = "dsocr-registry"
HUB_SCHEME = "hf://"
SHA_TAG = "dsocr.sha256."
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))")


class RegistryError(ValueError):
    """A registry name, version or alias that does not resolve, or a model that cannot be registered."""


@dataclass(frozen=True)
class Version:
    name: str
    version: str
    source: str
    tags: dict[str, str]

    @property
    def weights(self) -> dict[str, str] | None:
        """The checkpoint's weight digests by file name, as registered; None for a hub model."""
        digests = {key.removeprefix(SHA_TAG): value for key, value in self.tags.items() if key.startswith(SHA_TAG)}
        return digests or None

    @property
    def hub_spec(self) -> str | None:
        return self.source.removeprefix(HUB_SCHEME) if self.source.startswith(HUB_SCHEME) else None


def register(
    uri: str | None, name: str, model: str, description: str | None = None, exports: list[Path] = ()
) -> Version:
    """A new version of ``name`` (created if missing) for a checkpoint directory or ``HUB_ID@REVISION``;
    ``exports`` are encoder export folders of that checkpoint (``dsocr export``), stored and hashed with it."""
    client = mlflow_client(uri)
    path = Path(model).expanduser()
    if exports and not path.is_dir():
        raise RegistryError("exports can only be registered with a checkpoint directory, whose weights they match")
    if path.is_dir():
        digests = weights_sha256(path)
        tags = {f"{SHA_TAG}{file}": digest for file, digest in digests.items()}
        named_exports = {_export_name(folder, digests): folder for folder in exports}
        for export_name, folder in named_exports.items():
            for file in sorted(p for p in folder.iterdir() if p.is_file()):
                tags[f"dsocr.export.{export_name}.sha256.{file.name}"] = file_sha256(file)
        for key, value in (lineage_summary(read_lineage(path)) or {}).items():
            if value is not None:
                tags[f"dsocr.lineage.{key}"] = str(value)
        experiment = client.get_experiment_by_name(REGISTER_EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(REGISTER_EXPERIMENT)
        run = client.create_run(experiment_id, run_name=f"register {name}", tags={"dsocr.model": path.name})
        client.log_artifacts(run.info.run_id, str(path), "checkpoint")
        for export_name, folder in named_exports.items():
            client.log_artifacts(run.info.run_id, str(folder), f"exports/{export_name}")
        client.set_terminated(run.info.run_id, "FINISHED")
        source, run_id = f"{run.info.artifact_uri}/checkpoint", run.info.run_id
    elif HUB_ID.fullmatch(model) and "@" in model:
        tags, source, run_id = {"dsocr.hub_id": model.partition("@")[0]}, HUB_SCHEME + model, None
    else:
        raise RegistryError(f"{model}: not a checkpoint directory, nor a hub id pinned to a revision (ID@REVISION)")
    _ensure_registered_model(client, name)
    created = client.create_model_version(name, source, run_id=run_id, tags=tags, description=description)
    return Version(name, created.version, created.source, dict(created.tags))


def _export_name(folder: Path, digests: dict[str, str]) -> str:
    """``onnx-512-fp32``: what the folder's ``metadata.json`` says it is, once it is shown to come from ``digests``."""
    try:
        record = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        kind, view, dtype, source = record["format"], record["view"], record["dtype"], record["source"]
    except (OSError, ValueError, KeyError, TypeError):
        raise RegistryError(f"{folder}: not an export folder (no readable metadata.json from `dsocr export`)") from None
    if source.get("safetensors_sha256") != digests:
        raise RegistryError(f"{folder} was exported from other weights than the checkpoint being registered")
    return f"{kind}-{view}-{dtype}"


def get_version(uri: str | None, name: str, version: str | None = None, alias: str | None = None) -> Version:
    client = mlflow_client(uri)
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as error:
        if not _missing(error):
            raise
        what = f"alias @{alias}" if alias else f"version {version}"
        raise RegistryError(f"registered model {name!r} has no {what}") from None
    return Version(name, found.version, found.source, dict(found.tags))


def champion(uri: str | None, name: str, alias: str) -> Version | None:
    try:
        return get_version(uri, name, alias=alias)
    except RegistryError:
        return None


def set_alias(uri: str | None, version: Version, alias: str) -> None:
    mlflow_client(uri).set_registered_model_alias(version.name, alias, version.version)


def resolve_model_uri(model_uri: str, uri: str | None = None) -> str:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` → a local checkpoint directory (downloaded once, its
    weights checked against the registered digests) or a pinned hub id."""
    match = _MODEL_URI.fullmatch(model_uri)
    if not match:
        raise RegistryError(f"{model_uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    version = get_version(uri, match["name"], match["version"], match["alias"])
    if version.hub_spec:
        return version.hub_spec
    return str(_downloaded(version))


def _downloaded(version: Version) -> Path:
    cache = _cache_dir() / version.name / version.version
    checkpoint = cache / "checkpoint"
    if not (checkpoint.is_dir() and weights_sha256(checkpoint) == version.weights):
        import mlflow

        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(cache))
        if weights_sha256(checkpoint) != version.weights:
            raise RegistryError(f"{version.name} version {version.version}: the downloaded weights do not match "
                                "the digests registered with it")  # fmt: skip
    return checkpoint


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dsocr" / "registry"


def _ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if not _missing(error):
            raise
        client.create_registered_model(name, description="DeepSeek-OCR checkpoints registered by dsocr")


def list_versions(uri: str | None, name: str) -> list[tuple[Version, list[str]]]:
    """Every version of ``name``, oldest first, with the aliases pointing at it."""
    client = mlflow_client(uri)
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(name).aliases  # {alias: version}
    except MlflowException as error:
        if not _missing(error):
            raise
        raise RegistryError(f"no registered model {name!r}") from None
    found = client.search_model_versions(f"name = '{name}'")
    versions = sorted((Version(name, v.version, v.source, dict(v.tags)) for v in found), key=lambda v: int(v.version))
    return [(v, sorted(a for a, held in aliases.items() if str(held) == v.version)) for v in versions]


def _missing(error) -> bool:
    """Whether MLflow said the name or version does not exist (rather than failing to answer at all)."""
    code = getattr(error, "error_code", None)
    # An unknown alias comes back as an invalid parameter rather than a missing resource.
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(error))
