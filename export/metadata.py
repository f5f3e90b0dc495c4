"""``metadata.json``: what every exported artifact was built from, with what, and how closely it matches PyTorch.

An artifact folder holds the exported files and this record. It names the checkpoint (model id, revision,
SHA-256 of each safetensors file), the view size and dtype, the tool versions, the GPU for engines, and the
parity figures measured when it was written. Readers check it before they trust the files beside it.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import shutil
import tempfile
from pathlib import Path

from dsocr.model.source import Source, weights_sha256
from dsocr.triton.artifacts import METADATA_FILE, ArtifactError

#: Parity limits against the PyTorch fp32 encoder: max |exported − PyTorch| / max |PyTorch|.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


def source_record(source: Source) -> dict:
    return {
        "model_id": source.model_id,
        "revision": source.revision,
        "safetensors_sha256": weights_sha256(source.path),
    }


def versions(*packages: str) -> dict[str, str | None]:
    """Installed versions of ``packages`` (``None`` for one that is not installed), plus dsocr's own."""
    found = {}
    for package in ("dsocr", *packages):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def require_empty(out_dir: Path) -> None:
    """Checked before an export starts: an artifact never replaces files someone put there."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: not empty; choose a new or empty folder")


@contextlib.contextmanager
def staged_folder(out_dir: Path):
    """A new folder beside ``out_dir`` that becomes ``out_dir`` when the block succeeds and is removed if it fails,
    so that readers never see a half-written artifact."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield staging
        staging.chmod(0o755)
        if out_dir.exists():
            out_dir.rmdir()  # empty: checked before the build
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_metadata(folder: Path, record: dict) -> Path:
    path = folder / METADATA_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def check_source(record: dict, folder: Path, model_id: str, digests: dict[str, str]) -> None:
    """Refuse an artifact built from other weights than the checkpoint ``model_id`` whose files hash to ``digests``."""
    if record["source"]["safetensors_sha256"] != digests:
        raise ArtifactError(
            f"{folder} was exported from other weights than {model_id} has (SHA-256 of the safetensors files "
            f"differ; exported from {record['source']['model_id']}); export it again from this checkpoint"
        )
