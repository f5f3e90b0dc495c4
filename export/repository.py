"""``dsocr repository build``: a checkpoint's Triton model repository with its exported encoders in place.

The ``cpu`` target serves DeepEncoder from ONNX (ONNX Runtime in the Python backend), the ``gpu`` target from
TensorRT FP16 engines. Artifacts given (``--artifacts``) are checked to come from this checkpoint and used as they
are; a view size without one is exported here (ONNX anywhere; engines only where TensorRT and a GPU are).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from dsocr.contract import VIEW_SIZES
from dsocr.export.metadata import check_source
from dsocr.export.onnx import export_onnx
from dsocr.model.source import resolve, weights_sha256
from dsocr.triton.artifacts import ArtifactError, read_metadata
from dsocr.triton.repository import TARGET_FORMATS, ViewEncoders, materialize

DEFAULT_DTYPES = {"cpu": "fp32", "gpu": "fp16"}


def build_repository(
    out_dir: str | Path,
    model: str,
    target: str = "cpu",
    revision: str | None = None,
    parameters: Mapping[str, Mapping[str, str]] | None = None,
    artifacts: Iterable[str | Path] = (),
    progress=lambda message: None,
) -> Path:
    """Write the repository for checkpoint ``model`` into ``out_dir`` (see ``materialize``) and return it."""
    if target not in TARGET_FORMATS:
        raise ValueError(f"target {target!r}: choose one of {', '.join(TARGET_FORMATS)}")
    source = resolve(model, revision)
    digests = weights_sha256(source.path)
    folders: dict[int, list[Path]] = {}
    dtypes = set()
    for folder in map(Path, artifacts):
        record = read_metadata(folder, TARGET_FORMATS[target])
        check_source(record, folder, source.model_id, digests)
        folders.setdefault(record["view"], []).append(folder.absolute())
        dtypes.add(record["dtype"])
    if len(dtypes) > 1:
        raise ArtifactError(f"the exports given mix dtypes {sorted(dtypes)}; export every view size in one dtype")
    # Missing view sizes are exported like those given; otherwise fp32 for ONNX Runtime, fp16 for TensorRT.
    [dtype] = dtypes or {DEFAULT_DTYPES[target]}
    if target == "cpu":
        doubled = [str(view) for view, found in folders.items() if len(found) > 1]
        if doubled:
            raise ArtifactError(f"more than one ONNX export given for view size(s) {', '.join(doubled)}")

    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    missing = [view for view in VIEW_SIZES if view not in folders]
    if missing and target == "gpu":
        from dsocr.export.tensorrt import require_tensorrt

        require_tensorrt()  # before any export: without TensorRT there is nothing to build engines with
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.exports.", dir=out_dir.parent) as scratch:
        for view in missing:
            progress(f"exporting the encoder for {view}-pixel views")
            folders[view] = [_export(source, view, target, dtype, Path(scratch) / str(view))]
        # The repository links the exported files, so the scratch folder can go once it is written.
        return materialize(out_dir, source, ViewEncoders(target, folders), parameters=parameters)


def _export(source, view: int, target: str, dtype: str, folder: Path) -> Path:
    if target == "cpu":
        export_onnx(source, view, folder, dtype)
        return folder
    from dsocr.export.tensorrt import build_engine

    export_onnx(source, view, folder / "onnx", dtype)
    build_engine(folder / "onnx", folder / "engine")
    return folder / "engine"
