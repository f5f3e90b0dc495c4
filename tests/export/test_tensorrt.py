"""TensorRT engines of the exported encoder.

Refusals (no ``tensorrt``, no GPU, an engine for another GPU or TensorRT) and the precision switch run
everywhere. Building, parity and loading run where ``tensorrt`` and a CUDA GPU are present, and skip elsewhere
saying which is missing.
"""

import hashlib
import importlib.util
import json
import shutil
import sys
import types

import pytest
import torch

from dsocr.export import tensorrt as engines
from dsocr.export.metadata import TOLERANCE
from dsocr.export.onnx import export_onnx, random_views
from dsocr.triton.artifacts import ArtifactError, read_metadata


def _missing_for_engines() -> str:
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("the tensorrt module is not installed (pip install 'dsocr[tensorrt]')")
    if not torch.cuda.is_available():
        missing.append("no CUDA GPU is visible to torch")
    return " and ".join(missing)


MISSING = _missing_for_engines()
needs_tensorrt_and_gpu = pytest.mark.skipif(bool(MISSING), reason=f"building TensorRT engines: {MISSING}")

VIEW = 640
BUILT_FOR = {
    "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
    "versions": {"tensorrt": "10.13.3.9"},
}


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx") / "encoder"
    export_onnx(str(tiny_checkpoint), VIEW, folder, dtype="fp16")
    return folder


@pytest.fixture
def without_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError


# --- everywhere: refusals ------------------------------------------------------------------------------------


def test_require_tensorrt_without_the_module_says_how_to_install_it(without_tensorrt):
    with pytest.raises(engines.TensorRTUnavailable, match=r"pip install 'dsocr\[tensorrt\]'.*NVIDIA GPU"):
        engines.require_tensorrt()


def test_require_tensorrt_without_a_gpu_says_none_is_visible(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(engines.TensorRTUnavailable, match="no CUDA GPU is visible"):
        engines.require_tensorrt()


def test_local_gpu_is_none_without_a_cuda_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert engines.local_gpu() is None


def test_build_engine_without_tensorrt_writes_nothing(tiny_onnx, tmp_path, without_tensorrt):
    with pytest.raises(engines.TensorRTUnavailable):
        engines.build_engine(tiny_onnx, tmp_path / "engine", timing_cache=tmp_path / "timing.cache")
    assert list(tmp_path.iterdir()) == []


def test_build_engine_refuses_batch_sizes_out_of_order(tiny_onnx, tmp_path):
    with pytest.raises(ValueError, match="min <= opt <= max"):
        engines.build_engine(tiny_onnx, tmp_path / "engine", min_batch=4, opt_batch=2, max_batch=8)


def test_build_engine_refuses_a_folder_that_is_no_onnx_export(tmp_path):
    with pytest.raises(ArtifactError, match="dsocr export onnx"):
        engines.build_engine(tmp_path, tmp_path / "engine")


# --- everywhere: compatibility of a recorded engine with this machine ----------------------------------------


def test_engine_for_this_gpu_architecture_and_tensorrt_is_accepted():
    assert engines.check_engine_compatible(BUILT_FOR, "NVIDIA H100 80GB HBM3", "9.0", "10.13.3.9") is None


def test_engine_for_another_model_of_the_same_architecture_is_accepted():
    assert engines.check_engine_compatible(BUILT_FOR, "NVIDIA H200", "9.0", "10.13.3.9") is None


def test_engine_for_another_compute_capability_is_refused_naming_both():
    with pytest.raises(ArtifactError, match=r"compute capability 9\.0 .*this GPU is 8\.6 .*dsocr export tensorrt"):
        engines.check_engine_compatible(BUILT_FOR, "NVIDIA A10", "8.6", "10.13.3.9")


def test_engine_for_another_tensorrt_version_is_refused_naming_both():
    with pytest.raises(ArtifactError, match=r"TensorRT 10\.13\.3\.9, this machine has TensorRT 10\.8\.0\.43.*rebuild"):
        engines.check_engine_compatible(BUILT_FOR, "NVIDIA H100 80GB HBM3", "9.0", "10.8.0.43")


def test_engine_record_without_its_gpu_is_refused():
    with pytest.raises(ArtifactError, match="does not say which GPU"):
        engines.check_engine_compatible({"versions": {"tensorrt": "10.13.3.9"}}, "NVIDIA H100", "9.0", "10.13.3.9")


# --- everywhere: the precision switch ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("onnx_dtype", "version", "has_fp16_flag", "expected"),
    [
        ("fp16", "10.12.0.36", True, engines.Precision(strongly_typed=True, fp16_flag=False, engine="fp16")),
        ("fp16", "10.8.0.43", True, engines.Precision(strongly_typed=False, fp16_flag=True, engine="fp16")),
        ("fp32", "10.13.3.9", True, engines.Precision(strongly_typed=False, fp16_flag=True, engine="fp16")),
        ("fp16", "11.4.0.106", False, engines.Precision(strongly_typed=True, fp16_flag=False, engine="fp16")),
        ("fp32", "11.4.0.106", False, engines.Precision(strongly_typed=True, fp16_flag=False, engine="fp32")),
    ],
    ids=["fp16-strongly-typed-from-10.12", "fp16-flag-before-10.12", "fp32-flag-on-10", "fp16-on-11", "fp32-on-11"],
)
def test_precision_follows_the_graph_dtype_and_the_installed_tensorrt(onnx_dtype, version, has_fp16_flag, expected):
    assert engines.choose_precision(onnx_dtype, version, has_fp16_flag) == expected


# --- with TensorRT and a GPU: building, parity, loading ------------------------------------------------------


@pytest.fixture(scope="module")
def built(tiny_onnx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tensorrt")
    cache = folder / "timing.cache"
    record = engines.build_engine(tiny_onnx, folder / "engine", 1, 2, 4, timing_cache=cache)
    return folder / "engine", record, cache


@needs_tensorrt_and_gpu
def test_engine_matches_pytorch_within_the_fp16_tolerance(built):
    _, record, _ = built
    assert record["parity"]["batch_sizes"] == [1, 2, 4]
    assert record["parity"]["relative_error"] <= TOLERANCE["fp16"]


@needs_tensorrt_and_gpu
def test_engine_metadata_names_its_gpu_tensorrt_profile_and_onnx_source(built, tiny_onnx):
    import tensorrt

    engine_dir, record, _ = built
    assert read_metadata(engine_dir, "tensorrt") == record
    major, minor = torch.cuda.get_device_capability()
    assert record["gpu"] == {"name": torch.cuda.get_device_name(), "compute_capability": f"{major}.{minor}"}
    assert record["versions"]["tensorrt"] == tensorrt.__version__
    assert record["profile"]["pixel_values"]["max"] == [4, 3, VIEW, VIEW]
    assert (record["view"], record["dtype"], record["precision"]["engine"]) == (VIEW, "fp16", "fp16")
    onnx_record = read_metadata(tiny_onnx, "onnx")
    assert (record["source"], record["opset"]) == (onnx_record["source"], onnx_record["opset"])
    onnx_bytes = (tiny_onnx / "model.onnx").read_bytes()
    assert record["onnx_sha256"]["model.onnx"] == hashlib.sha256(onnx_bytes).hexdigest()


@needs_tensorrt_and_gpu
def test_timing_cache_is_saved_and_its_hash_recorded(built):
    _, record, cache = built
    assert record["timing_cache"]["saved_sha256"] == hashlib.sha256(cache.read_bytes()).hexdigest()


@needs_tensorrt_and_gpu
def test_rebuild_loads_the_saved_timing_cache(built, tiny_onnx, tmp_path):
    _, first, cache = built
    again = engines.build_engine(tiny_onnx, tmp_path / "engine", 1, 2, 4, timing_cache=cache, validate=False)
    assert again["timing_cache"]["loaded_sha256"] == first["timing_cache"]["saved_sha256"]


@needs_tensorrt_and_gpu
def test_loaded_engine_encodes_a_batch_within_its_profile(built):
    engine_dir, record, _ = built
    features = engines.load_engine(engine_dir)(random_views(VIEW, 3, seed=7))
    assert list(features.shape) == [3, *record["output"]["shape"][1:]]


@needs_tensorrt_and_gpu
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda record: record["gpu"].update(compute_capability="1.0"), "compute capability 1.0"),
        (lambda record: record["versions"].update(tensorrt="9.0.0.0"), "TensorRT 9.0.0.0"),
    ],
    ids=["compute-capability", "tensorrt-version"],
)
def test_load_engine_refuses_an_engine_recorded_for_another_gpu_or_tensorrt(built, tmp_path, edit, message):
    engine_dir, record, _ = built
    copy = shutil.copytree(engine_dir, tmp_path / "engine")
    edited = json.loads(json.dumps(record))
    edit(edited)
    (copy / "metadata.json").write_text(json.dumps(edited))
    with pytest.raises(ArtifactError, match=f"{message}.*dsocr export tensorrt"):
        engines.load_engine(copy)
