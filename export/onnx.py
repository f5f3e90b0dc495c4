"""``dsocr export onnx``: DeepEncoder for one view size as ONNX with a dynamic batch, checked against PyTorch.

Position tables are resized for the view before export (``resolve_positions``), so the graph holds plain tables
instead of bicubic resizes. The file is written with torch's dynamo exporter, weights as external data, then
passes ``onnx.checker`` and an ONNX Runtime parity check on fresh random views of two batch sizes before it is
moved into place; an export that fails either leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from dsocr.contract import ENCODER_INPUT, ENCODER_OUTPUT, VIEW_SIZES
from dsocr.export.metadata import TOLERANCE, now, require_empty, source_record, staged_folder, versions, write_metadata
from dsocr.model.checkpoint import load_model
from dsocr.model.deepencoder import DeepEncoder, resolve_positions
from dsocr.model.inference import DTYPES
from dsocr.model.source import Source, resolve
from dsocr.triton.backend import ONNX_FILE

WEIGHTS_FILE = "model.onnx.data"
#: Torch's ONNX function library is written at opset 18; TensorRT 10's parser reads up to opset 20 or more.
OPSET = 18
#: The batch the graph is traced with; the parity check runs other batch sizes, so the dynamic batch is tested.
EXAMPLE_BATCH = 3
MAX_BATCH = 1024


class ExportError(RuntimeError):
    """An export that failed its checks; nothing was written."""


def parity_batches(view: int) -> tuple[int, ...]:
    """Batch sizes of the parity check. ONNX Runtime holds SAM's global attention maps whole: at 1280 pixels about
    9 GB a view in fp32, so there batch 1 alone keeps a full-size export within a 24 GB machine."""
    return (1, 2) if view < 1280 else (1,)


def random_views(view: int, batch: int, seed: int) -> torch.Tensor:
    """Normalised pixel values in [-1, 1], the range of real preprocessed views."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, view, view, generator=generator) * 2 - 1


def parity(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """How far an exported encoder's output is from PyTorch's: max abs error, and that relative to the output."""
    actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    max_abs = float(np.abs(actual - expected).max())
    return {"max_abs_error": max_abs, "relative_error": max_abs / max(float(np.abs(expected).max()), 1e-30)}


def export_onnx(
    model: str | Source,
    view: int,
    out_dir: str | Path,
    dtype: str = "fp32",
    revision: str | None = None,
    seed: int = 0,
    batches: tuple[int, ...] | None = None,
) -> dict:
    """Export the encoder of checkpoint ``model`` for ``view``-pixel views into ``out_dir``; returns the metadata.

    The parity check runs ``batches`` (default ``parity_batches(view)``) of fresh random views from ``seed``.
    """
    if view not in VIEW_SIZES:
        raise ValueError(f"view {view}: DeepSeek-OCR's view sizes are {', '.join(map(str, VIEW_SIZES))}")
    if dtype not in TOLERANCE:
        raise ValueError(f"dtype {dtype!r}: choose one of {', '.join(TOLERANCE)}")
    source = model if isinstance(model, Source) else resolve(model, revision)
    out_dir = Path(out_dir).absolute()
    require_empty(out_dir)

    started = time.perf_counter()
    encoder = load_model(source, parts=("encoder",)).encoder
    batches = batches or parity_batches(view)
    inputs = [random_views(view, batch, seed + batch) for batch in batches]
    with torch.inference_mode():
        expected = [encoder(views).numpy() for views in inputs]  # the fp32 encoder as trained, before any change
    encoder = resolve_positions(encoder, view).to(DTYPES[dtype])

    with staged_folder(out_dir) as staging:
        _write_onnx(encoder, view, DTYPES[dtype], staging / ONNX_FILE)
        del encoder  # its weights are in the file now; ONNX Runtime needs the memory
        export_s = time.perf_counter() - started
        _check(staging / ONNX_FILE)
        measured = _onnxruntime_parity(staging / ONNX_FILE, inputs, expected, DTYPES[dtype])
        if measured["relative_error"] > TOLERANCE[dtype]:
            raise ExportError(
                f"ONNX Runtime output differs from PyTorch by {measured['relative_error']:.2e} (relative), over "
                f"the {dtype} limit {TOLERANCE[dtype]:.0e}; nothing was written"
            )
        record = {
            "format": "onnx",
            "component": "deepencoder",
            "view": view,
            "dtype": dtype,
            "opset": OPSET,
            "input": {"name": ENCODER_INPUT, "shape": ["batch", 3, view, view], "dtype": dtype},
            "output": {"name": ENCODER_OUTPUT, "shape": ["batch", *expected[0].shape[1:]], "dtype": dtype},
            "files": [ONNX_FILE, WEIGHTS_FILE],
            "file_bytes": {name: (staging / name).stat().st_size for name in (ONNX_FILE, WEIGHTS_FILE)},
            "source": source_record(source),
            "versions": versions("torch", "onnx", "onnxscript", "onnxruntime"),
            "parity": {
                "reference": "PyTorch fp32 encoder, CPU",
                "runtime": "ONNX Runtime, CPUExecutionProvider",
                "inputs": f"uniform random views in [-1, 1], seed {seed}",
                "batch_sizes": list(batches),
                **measured,
                "tolerance": TOLERANCE[dtype],
            },
            "export_seconds": round(export_s, 2),
            "created": now(),
        }
        write_metadata(staging, record)
    return record


def _write_onnx(encoder: DeepEncoder, view: int, dtype: torch.dtype, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = random_views(view, EXAMPLE_BATCH, seed=-1).to(dtype)
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations inside the exporter
        program = torch.onnx.export(
            encoder,
            (example,),
            input_names=[ENCODER_INPUT],
            output_names=[ENCODER_OUTPUT],
            dynamic_shapes={"pixel_values": {0: batch}},
            opset_version=OPSET,
            dynamo=True,
            external_data=True,
            verbose=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path), external_data=True)
    written = path.parent / (path.name + ".data")
    if written.name != WEIGHTS_FILE:
        written.rename(path.parent / WEIGHTS_FILE)


def _check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)  # a path, so models past 2 GB are checked too
    except onnx.checker.ValidationError as err:
        raise ExportError(f"onnx.checker rejects the export: {err}") from None


def _onnxruntime_parity(path: Path, inputs: list[torch.Tensor], expected: list[np.ndarray], dtype) -> dict:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    actual = [session.run([ENCODER_OUTPUT], {ENCODER_INPUT: views.numpy().astype(numpy_dtype)})[0] for views in inputs]
    if any(a.shape != e.shape for a, e in zip(actual, expected)):
        raise ExportError(
            f"ONNX Runtime gives shapes {[a.shape for a in actual]}, PyTorch {[e.shape for e in expected]}"
        )
    return parity(np.concatenate(actual), np.concatenate(expected))


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs each of its stages and the operators it skips; a command prints its own summary."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
