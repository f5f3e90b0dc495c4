"""Finding a checkpoint in the official DeepSeek-OCR layout, listing its weight files and hashing them.

A checkpoint is a directory with the published ``config.json``, one or more safetensors files (single
``model.safetensors``, or shards listed in ``model.safetensors.index.json``) and the tokenizer files. It
is given as a local path or a hub id, optionally pinned as ``owner/name@revision``. No remote code runs, and
nothing here needs torch: building a model repository, or recording lineage, only finds and hashes files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

OFFICIAL_MODEL_ID = "deepseek-ai/DeepSeek-OCR"
INDEX_FILE = "model.safetensors.index.json"
#: What ``dsocr train`` writes beside the weights it trained: base model, datasets, parameters, commit.
LINEAGE_FILE = "lineage.json"
_HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*"]
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+(@[\w./-]+)?")


class CheckpointError(Exception):
    """A checkpoint that cannot be found or does not match the model it claims to be."""


@dataclass(frozen=True)
class Source:
    """Where a checkpoint came from, for lineage in everything built from it."""

    path: Path
    model_id: str
    revision: str | None

    @property
    def lineage(self) -> dict | None:
        return read_lineage(self.path)


def resolve(model: str, revision: str | None = None) -> Source:
    """A local checkpoint directory, or a hub id downloaded (or found in the hub cache) at ``revision``."""
    path = Path(model).expanduser()
    if path.is_dir():
        return Source(path.resolve(), str(path.resolve()), None)
    if path.exists() or not HUB_ID.fullmatch(model):
        raise CheckpointError(f"{model}: not a checkpoint directory or a hub id like {OFFICIAL_MODEL_ID}")
    repo_id, _, pinned = model.partition("@")
    revision = revision or pinned or None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        local = snapshot_download(repo_id, revision=revision, allow_patterns=_HUB_PATTERNS)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise CheckpointError(
            f"could not fetch {repo_id}@{revision or 'main'} from the hub, and it is not in the local hub cache "
            f"({type(err).__name__}); pass a local checkpoint directory instead"
        ) from None
    return Source(Path(local), repo_id, Path(local).name)


def safetensors_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint directory, from its index if it has one."""
    index = directory / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        files = [directory / name for name in dict.fromkeys(weight_map.values())]
    else:
        files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{directory}: no safetensors files")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"{directory}: the index names missing files {missing}")
    return files


def weights_sha256(path: Path) -> dict[str, str]:
    """SHA-256 of every safetensors file of a checkpoint directory, by file name: what an artifact was built from."""
    return {file.name: file_sha256(file) for file in safetensors_files(path)}


def file_sha256(path: Path) -> str:
    """A file's SHA-256, computed once per version of the file: a build asks for a 6.7 GB checkpoint's digests
    once per artifact it writes or checks."""
    stat = path.stat()
    return _sha256_of(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_of(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def read_lineage(directory: Path) -> dict | None:
    """The training lineage of a checkpoint ``dsocr train`` wrote; None for one it did not."""
    file = Path(directory) / LINEAGE_FILE
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{file}: not a lineage record ({err})") from None


def write_lineage(directory: Path, lineage: dict) -> None:
    (Path(directory) / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")


def lineage_summary(lineage: dict | None) -> dict | None:
    """The few lineage facts every artifact built from a trained checkpoint carries (records, repository configs)."""
    if not lineage:
        return None
    base = lineage.get("base", {})
    return {
        "base_model_id": base.get("model_id"),
        "base_revision": base.get("revision"),
        "data_sha256": (lineage.get("data") or {}).get("sha256"),
        "steps": lineage.get("steps"),
        "git_commit": lineage.get("git_commit"),
    }
