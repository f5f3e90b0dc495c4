"""``dsocr export tensorrt``: a TensorRT engine of an exported ONNX DeepEncoder, checked against PyTorch.

The engine is built with the TensorRT Python API from the ``model.onnx`` of a ``dsocr export onnx`` folder,
with one optimisation profile over the batch, an optional timing cache, and the precision the installed
TensorRT expects (``choose_precision``). Before it is moved into place its output is compared with the PyTorch
fp32 encoder of the checkpoint the ONNX file came from; an engine that fails leaves nothing behind.

An engine only runs on the GPU architecture and TensorRT version it was built with, so its ``metadata.json``
records both and ``load_engine`` refuses an engine built for others before TensorRT is asked to read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dsocr.contract import ENCODER_INPUT, ENCODER_OUTPUT
from dsocr.export.metadata import TOLERANCE, check_source, now, require_empty, staged_folder, versions, write_metadata
from dsocr.export.onnx import WEIGHTS_FILE, ExportError, parity, random_views
from dsocr.model.checkpoint import load_model
from dsocr.model.source import file_sha256, resolve, weights_sha256
from dsocr.triton.artifacts import ArtifactError, read_metadata
from dsocr.triton.backend import ONNX_FILE

ENGINE_FILE = "model.plan"
INSTALL_HINT = "pip install 'dsocr[tensorrt]'"
#: Weak typing (``BuilderFlag.FP16`` on an fp32 graph) is deprecated from TensorRT 10.12 and gone in 11.
STRONG_TYPING_FROM = (10, 12)
#: The reference runs the PyTorch encoder this many views at a time: SAM's global attention at 1280 px holds
#: a [heads, 6400, 6400] fp32 bias per view (2 GB), so a whole max-batch at once would not fit.
REFERENCE_CHUNK = 2
PARITY_SEED = 0

log = logging.getLogger(__name__)


class TensorRTUnavailable(RuntimeError):
    """No ``tensorrt`` module or no CUDA GPU here: engines cannot be built or run."""


def require_tensorrt():
    """The ``tensorrt`` module, once it is known to be installed and a CUDA GPU to be visible."""
    try:
        import tensorrt
    except (ImportError, OSError) as err:  # OSError: the module is there but its CUDA libraries are not
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TensorRTUnavailable(
            f"TensorRT is not available ({reason}): run `{INSTALL_HINT}` on a machine with an NVIDIA GPU"
        ) from None
    if not torch.cuda.is_available():
        raise TensorRTUnavailable(
            f"no CUDA GPU is visible (torch {torch.__version__} sees none): TensorRT engines are built and run on "
            "the NVIDIA GPU they are for"
        )
    return tensorrt


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str  # "9.0": how Triton's cc_model_filenames and TensorRT's portability rules name it


def local_gpu(device: int | None = None) -> Gpu | None:
    """The name and compute capability of CUDA device ``device`` (the current one by default); ``None`` without one."""
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return Gpu(torch.cuda.get_device_name(device), f"{major}.{minor}")


# --- precision: the one switch ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    strongly_typed: bool  # every tensor keeps the graph's own type (an fp16 graph runs in fp16)
    fp16_flag: bool  # weak typing: TensorRT may pick fp16 kernels for an fp32 graph
    engine: str  # what the engine computes in, and so which TOLERANCE its parity is held to


def choose_precision(onnx_dtype: str, tensorrt_version: str, has_fp16_flag: bool) -> Precision:
    """How to build an ``onnx_dtype`` graph with this TensorRT.

    An fp16 graph on TensorRT >= 10.12 is built strongly typed, as that TensorRT expects. Older TensorRT, or
    an fp32 graph, gets ``BuilderFlag.FP16`` while it exists (TensorRT 10). TensorRT 11 removed it and is
    always strongly typed: an fp32 graph there is an fp32 engine.
    """
    if onnx_dtype not in TOLERANCE:
        raise ValueError(f"dtype {onnx_dtype!r}: choose one of {', '.join(TOLERANCE)}")
    if onnx_dtype == "fp16" and version_tuple(tensorrt_version) >= STRONG_TYPING_FROM:
        return Precision(strongly_typed=True, fp16_flag=False, engine="fp16")
    if has_fp16_flag:
        return Precision(strongly_typed=False, fp16_flag=True, engine="fp16")
    return Precision(strongly_typed=True, fp16_flag=False, engine=onnx_dtype)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"10.12.0.36"`` → ``(10, 12)``: major and minor, what engine and API compatibility follow."""
    return tuple(int(part) for part in version.split(".")[:2])


# --- compatibility ------------------------------------------------------------------------------------------


def check_engine_compatible(record: dict, gpu_name: str, compute_capability: str, tensorrt_version: str) -> None:
    """Refuse an engine built for another GPU architecture or TensorRT version than this machine's."""
    try:
        built_gpu, built_cc = record["gpu"]["name"], record["gpu"]["compute_capability"]
        built_trt = record["versions"]["tensorrt"]
    except (KeyError, TypeError):
        raise ArtifactError(
            "the engine's metadata.json does not say which GPU and TensorRT it was built for; "
            "rebuild it with `dsocr export tensorrt` on the target GPU"
        ) from None
    mismatches = []
    if built_cc != compute_capability:
        mismatches.append(f"compute capability {built_cc} ({built_gpu}), this GPU is {compute_capability} ({gpu_name})")
    if built_trt != tensorrt_version:
        mismatches.append(f"TensorRT {built_trt}, this machine has TensorRT {tensorrt_version}")
    if mismatches:
        raise ArtifactError(
            f"the engine was built for {'; and for '.join(mismatches)}. An engine runs only on the GPU "
            "architecture and TensorRT version it was built with: rebuild it with `dsocr export tensorrt` on the "
            "target GPU"
        )
    if built_gpu != gpu_name:  # same architecture: it runs, though its tactics were timed on another model
        log.warning("engine built on %s, running on %s (same compute capability %s)", built_gpu, gpu_name, built_cc)


# --- building -----------------------------------------------------------------------------------------------


def build_engine(
    onnx_dir: str | Path,
    out_dir: str | Path,
    min_batch: int = 1,
    opt_batch: int = 8,
    max_batch: int = 32,
    timing_cache: str | Path | None = None,
    validate: bool = True,
) -> dict:
    """Build a TensorRT engine of the ONNX export in ``onnx_dir`` into ``out_dir``; returns its metadata.

    ``timing_cache`` is read if it exists and written back after the build. With ``validate`` the engine's
    output is compared with the PyTorch fp32 encoder at the profile's min, opt and max batch sizes, and an
    engine past its precision's ``TOLERANCE`` is refused.
    """
    onnx_dir, out_dir = Path(onnx_dir), Path(out_dir).absolute()
    onnx_record = read_metadata(onnx_dir, "onnx")
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"batch sizes must satisfy 1 <= min <= opt <= max, got {min_batch}, {opt_batch}, {max_batch}")
    require_empty(out_dir)
    trt = require_tensorrt()
    gpu = local_gpu()
    precision = choose_precision(onnx_record["dtype"], trt.__version__, hasattr(trt.BuilderFlag, "FP16"))
    view = onnx_record["view"]
    profile = {
        name: [batch, 3, view, view] for name, batch in (("min", min_batch), ("opt", opt_batch), ("max", max_batch))
    }
    cache_file = Path(timing_cache) if timing_cache else None
    cache_before = cache_file.read_bytes() if cache_file and cache_file.is_file() else b""

    started = time.perf_counter()
    plan, cache_after = _build(trt, onnx_dir / ONNX_FILE, precision, profile, cache_before)
    build_s = time.perf_counter() - started
    if cache_file:  # worth keeping even if the engine fails its check: the timings hold
        _write_atomically(cache_file, cache_after)
    checked = None
    if validate:
        checked = _checked_parity(
            trt, plan, onnx_dir, onnx_record, sorted({min_batch, opt_batch, max_batch}), precision
        )

    record = {
        "format": "tensorrt",
        "component": onnx_record["component"],
        "view": view,
        "dtype": onnx_record["dtype"],
        "precision": {
            "engine": precision.engine,
            "strongly_typed": precision.strongly_typed,
            "builder_flag_fp16": precision.fp16_flag,
        },
        "opset": onnx_record["opset"],
        "input": onnx_record["input"],
        "output": onnx_record["output"],
        "profile": {ENCODER_INPUT: profile},
        "files": [ENGINE_FILE],
        "file_bytes": {ENGINE_FILE: len(plan)},
        "source": onnx_record["source"],
        "onnx_sha256": {name: file_sha256(onnx_dir / name) for name in (ONNX_FILE, WEIGHTS_FILE)},
        "versions": {**versions("torch", "onnx"), "tensorrt": trt.__version__, "cuda": torch.version.cuda},
        "gpu": {"name": gpu.name, "compute_capability": gpu.compute_capability},
        "timing_cache": {
            "file": str(cache_file) if cache_file else None,
            "loaded_sha256": hashlib.sha256(cache_before).hexdigest() if cache_before else None,
            "saved_sha256": hashlib.sha256(cache_after).hexdigest() if cache_file else None,
        },
        "build_seconds": round(build_s, 2),
        "parity": checked,  # None: built with validate=False
        "created": now(),
    }
    with staged_folder(out_dir) as staging:
        (staging / ENGINE_FILE).write_bytes(plan)
        write_metadata(staging, record)
    return record


def _build(trt, onnx_file: Path, precision: Precision, profile: dict, cache: bytes) -> tuple[bytes, bytes]:
    """The serialised engine and the timing cache after the build."""
    logger = _logger(trt)
    logger.errors.clear()
    builder = trt.Builder(logger)
    flags = 0  # explicit batch is the only mode from TensorRT 10 on; its flag is deprecated there, gone in 11
    if precision.strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # TensorRT 11 ignores it: always on
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):  # reads model.onnx.data beside it
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser rejects {onnx_file}: {errors or logger.errors_text()}")
    names = {network.get_input(i).name for i in range(network.num_inputs)}
    names |= {network.get_output(i).name for i in range(network.num_outputs)}
    if names != {ENCODER_INPUT, ENCODER_OUTPUT}:
        raise ExportError(f"{onnx_file}: tensors {sorted(names)}, expected {ENCODER_INPUT} and {ENCODER_OUTPUT}")

    config = builder.create_builder_config()
    if precision.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision.engine == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default; fp32 parity (1e-4) needs real fp32 matmuls
    optimisation = builder.create_optimization_profile()
    optimisation.set_shape(ENCODER_INPUT, profile["min"], profile["opt"], profile["max"])
    config.add_optimization_profile(optimisation)
    timing_cache = config.create_timing_cache(cache)
    if config.set_timing_cache(timing_cache, False) is False:  # False: refuse a cache timed on another GPU
        raise ExportError("TensorRT refused the timing cache (another GPU or TensorRT version?); pass another file")

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT could not build an engine of {onnx_file}: {logger.errors_text()}")
    return bytes(plan), bytes(config.get_timing_cache().serialize())


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_bytes(data)
    temporary.replace(path)


# --- loading and running ------------------------------------------------------------------------------------


@dataclass
class Engine:
    """A deserialised engine with the runtime that must outlive it, and its metadata."""

    record: dict
    engine: object  # tensorrt.ICudaEngine
    runtime: object  # tensorrt.Runtime

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        """``[B, 3, V, V]`` views → ``[B, tokens, D]`` features on the GPU, B within the engine's profile."""
        return run_engine(self.engine, views)


def load_engine(engine_dir: str | Path) -> Engine:
    """The engine in ``engine_dir``, once its metadata says it was built for this GPU and TensorRT."""
    engine_dir = Path(engine_dir)
    record = read_metadata(engine_dir, "tensorrt")
    trt = require_tensorrt()
    gpu = local_gpu()
    try:
        check_engine_compatible(record, gpu.name, gpu.compute_capability, trt.__version__)
    except ArtifactError as err:
        raise ArtifactError(f"{engine_dir}: {err}") from None
    runtime, engine = _deserialize(trt, (engine_dir / ENGINE_FILE).read_bytes(), engine_dir)
    return Engine(record, engine, runtime)


def _deserialize(trt, plan: bytes, where: Path | str):
    logger = _logger(trt)
    logger.errors.clear()
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ArtifactError(f"{where}: TensorRT could not deserialise the engine: {logger.errors_text()}")
    return runtime, engine


def run_engine(engine, views: torch.Tensor) -> torch.Tensor:
    """Run ``engine`` on ``views`` (copied to the GPU in the engine's input dtype) on a stream of its own."""
    trt = require_tensorrt()
    dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    inputs = views.to(device="cuda", dtype=dtypes[engine.get_tensor_dtype(ENCODER_INPUT)]).contiguous()
    context = engine.create_execution_context()
    if not context.set_input_shape(ENCODER_INPUT, tuple(inputs.shape)):
        raise ValueError(f"input shape {tuple(inputs.shape)} is outside the engine's optimisation profile")
    shape = tuple(context.get_tensor_shape(ENCODER_OUTPUT))
    outputs = torch.empty(shape, dtype=dtypes[engine.get_tensor_dtype(ENCODER_OUTPUT)], device="cuda")
    context.set_tensor_address(ENCODER_INPUT, inputs.data_ptr())
    context.set_tensor_address(ENCODER_OUTPUT, outputs.data_ptr())
    stream = torch.cuda.Stream()  # not the default stream, which makes TensorRT synchronise around the call
    stream.wait_stream(torch.cuda.current_stream())  # the copy of ``inputs`` above
    if not context.execute_async_v3(stream.cuda_stream):
        raise RuntimeError("TensorRT failed to run the engine")
    stream.synchronize()
    return outputs


def _checked_parity(
    trt, plan: bytes, onnx_dir: Path, onnx_record: dict, batches: list[int], precision: Precision
) -> dict:
    """The engine's parity record against the checkpoint's PyTorch fp32 encoder; an engine past its precision's
    tolerance is refused."""
    import numpy as np

    source_info = onnx_record["source"]
    source = resolve(source_info["model_id"], source_info["revision"])
    # The reference must be the weights the ONNX file was exported from.
    check_source(onnx_record, onnx_dir, source.model_id, weights_sha256(source.path))
    encoder = load_model(source, device="cuda", parts=("encoder",)).encoder
    _, engine = _deserialize(trt, plan, "the new engine")
    view = onnx_record["view"]
    actual, expected = [], []
    with torch.inference_mode(), _strict_fp32():
        for batch in batches:
            views = random_views(view, batch, PARITY_SEED + batch)
            actual.append(run_engine(engine, views).float().cpu().numpy())
            chunks = [encoder(chunk.cuda()).cpu() for chunk in views.split(REFERENCE_CHUNK)]
            expected.append(torch.cat(chunks).numpy())
    if any(a.shape != e.shape for a, e in zip(actual, expected)):
        raise ExportError(f"TensorRT gives shapes {[a.shape for a in actual]}, PyTorch {[e.shape for e in expected]}")
    measured = parity(np.concatenate(actual), np.concatenate(expected))
    tolerance = TOLERANCE[precision.engine]
    if measured["relative_error"] > tolerance:
        raise ExportError(
            f"TensorRT output differs from PyTorch by {measured['relative_error']:.2e} (relative), over the "
            f"{precision.engine} limit {tolerance:.0e}; nothing was written"
        )
    return {
        "reference": "PyTorch fp32 encoder, CUDA, TF32 off",
        "runtime": f"TensorRT {trt.__version__}",
        "inputs": f"uniform random views in [-1, 1], seed {PARITY_SEED}",
        "batch_sizes": batches,
        **measured,
        "tolerance": tolerance,
    }


@contextlib.contextmanager
def _strict_fp32():
    """PyTorch's CUDA reference in true fp32: cuDNN convolutions default to TF32 (10 mantissa bits), too coarse
    for a reference that fp32 engines are held to 1e-4 against."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


_LOGGER = None


def _logger(trt):
    """One TensorRT logger for the process (TensorRT expects one): warnings and errors go to ``logging``, and
    errors are kept so that a failed build or load can say why."""
    global _LOGGER
    if _LOGGER is None:

        class CollectingLogger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: list[str] = []

            def log(self, severity, message):
                if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                    self.errors.append(message)
                    log.error("TensorRT: %s", message)
                elif severity == trt.ILogger.Severity.WARNING:
                    log.warning("TensorRT: %s", message)

            def errors_text(self) -> str:
                return " | ".join(self.errors[-5:]) or "TensorRT logged no error"

        _LOGGER = CollectingLogger()
    return _LOGGER


__all__ = [
    "Engine",
    "Gpu",
    "Precision",
    "TensorRTUnavailable",
    "build_engine",
    "check_engine_compatible",
    "choose_precision",
    "load_engine",
    "local_gpu",
    "require_tensorrt",
    "run_engine",
]
