"""An exported encoder's folder as the repository reads it: the files and the ``metadata.json`` lineage record
that ``dsocr export`` writes beside them (``dsocr.export.metadata`` writes them; this is the reading side)."""

from __future__ import annotations

import json
from pathlib import Path

METADATA_FILE = "metadata.json"


class ArtifactError(ValueError):
    """An artifact folder that is missing, incomplete, or built for something other than what is asked."""


def read_metadata(folder: str | Path, kind: str) -> dict:
    """The record of an artifact folder of ``kind`` (``onnx`` or ``tensorrt``), checked to be one."""
    path = Path(folder) / METADATA_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{folder}: no {METADATA_FILE}; not a folder written by `dsocr export {kind}`") from None
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{path}: unreadable ({err})") from None
    if record.get("format") != kind:
        raise ArtifactError(f"{folder}: holds a {record.get('format')!r} artifact, not {kind!r}")
    missing = [name for name in record.get("files", []) if not (Path(folder) / name).is_file()]
    if missing:
        raise ArtifactError(f"{folder}: {', '.join(missing)} missing (listed in {METADATA_FILE})")
    return record
