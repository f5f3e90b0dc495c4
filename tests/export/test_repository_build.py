"""``dsocr repository build``: the repository with an ``encoder_<size>`` model per view size, from exports that
must come from the checkpoint being served; ONNX Runtime models for the CPU, TensorRT plans for GPUs."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsocr.contract import VIEW_SIZES
from dsocr.export.metadata import write_metadata
from dsocr.export.onnx import export_onnx
from dsocr.export.repository import build_repository
from dsocr.model.tiny import write_tiny_checkpoint
from dsocr.triton.artifacts import ArtifactError, read_metadata
from dsocr.triton.repository import RepositoryError, ViewEncoders, check_repository, materialize, read_config


@pytest.fixture(scope="module")
def cpu_repository(tiny_checkpoint, tiny_onnx_exports, tmp_path_factory) -> Path:
    return build_repository(
        tmp_path_factory.mktemp("build") / "repository", str(tiny_checkpoint), artifacts=tiny_onnx_exports
    )


def _engine_folders(tiny_onnx_exports, tmp_path, capability: str, max_batch: int = 16) -> dict[int, list[Path]]:
    """Folders shaped like `dsocr export tensorrt` output (no TensorRT here to build real plans): the ONNX record
    made into an engine record, and a placeholder plan file."""
    folders = {}
    for onnx_folder in tiny_onnx_exports:
        record = read_metadata(onnx_folder, "onnx")
        folder = tmp_path / f"engine-{record['view']}-sm{capability}"
        folder.mkdir()
        (folder / "model.plan").write_bytes(b"plan for " + capability.encode())
        engine = {
            **record,
            "format": "tensorrt",
            "dtype": "fp16",
            "files": ["model.plan"],
            "gpu": {"name": "NVIDIA GPU", "compute_capability": capability},
            "profile": {"pixel_values": {"max": [max_batch, 3, record["view"], record["view"]]}},
        }
        write_metadata(folder, engine)
        folders[record["view"]] = [folder]
    return folders


def test_each_view_size_gets_an_onnx_runtime_model_of_its_exact_shape(cpu_repository):
    for view in VIEW_SIZES:
        config = read_config(cpu_repository / f"encoder_{view}" / "configs" / "cpu.pbtxt")
        assert (config.name, config.backend) == (f"encoder_{view}", "python")
        assert list(config.input[0].dims) == [3, view, view]
        assert list(config.output[0].dims) == [(view // 64) ** 2, 64]


def test_the_exported_files_are_linked_into_the_repository_not_exported_again(cpu_repository, tiny_onnx_exports):
    for folder in tiny_onnx_exports:
        view = read_metadata(folder, "onnx")["view"]
        written = cpu_repository / f"encoder_{view}" / "1"
        assert (written / "model.onnx.data").stat().st_ino == (folder / "model.onnx.data").stat().st_ino
        assert (written / "metadata.json").read_text() == (folder / "metadata.json").read_text()


def test_encode_is_told_the_dtype_and_batch_limit_of_the_view_models(cpu_repository):
    parameters = read_config(cpu_repository / "encode" / "config.pbtxt").parameters
    assert parameters["view_dtype"].string_value == "float32"
    assert parameters["view_max_batch_size"].string_value == "32"


def test_a_cpu_build_passes_the_checks_for_cpu_only(cpu_repository):
    check_repository(cpu_repository, "cpu")
    with pytest.raises(RepositoryError, match="encoder_512: neither configs/gpu.pbtxt nor config.pbtxt"):
        check_repository(cpu_repository, "gpu")


def test_a_gpu_build_names_one_plan_per_compute_capability(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    hopper, ampere = (
        _engine_folders(tiny_onnx_exports, tmp_path, "9.0"),
        _engine_folders(tiny_onnx_exports, tmp_path, "8.0"),
    )
    folders = {view: hopper[view] + ampere[view] for view in VIEW_SIZES}
    repository = materialize(tmp_path / "repository", str(tiny_checkpoint), ViewEncoders("gpu", folders))
    check_repository(repository, "gpu")
    config = read_config(repository / "encoder_1024" / "configs" / "gpu.pbtxt")
    assert config.platform == "tensorrt_plan"
    assert dict(config.cc_model_filenames) == {"9.0": "model_sm90.plan", "8.0": "model_sm80.plan"}
    assert (repository / "encoder_1024" / "1" / "model_sm80.plan").read_bytes() == b"plan for 8.0"
    assert read_config(repository / "encode" / "config.pbtxt").parameters["view_dtype"].string_value == "float16"


def test_a_gpu_build_batches_no_more_views_than_the_engines_profile(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    folders = _engine_folders(tiny_onnx_exports, tmp_path, "9.0", max_batch=8)
    repository = materialize(tmp_path / "repository", str(tiny_checkpoint), ViewEncoders("gpu", folders))
    assert read_config(repository / "encoder_640" / "configs" / "gpu.pbtxt").max_batch_size == 8
    assert read_config(repository / "encode" / "config.pbtxt").parameters["view_max_batch_size"].string_value == "8"


def test_a_missing_view_size_is_refused(tiny_onnx_exports):
    folders = {read_metadata(f, "onnx")["view"]: [f] for f in tiny_onnx_exports[1:]}
    with pytest.raises(ArtifactError, match="no onnx encoder for view size"):
        ViewEncoders("cpu", folders)


def test_exports_of_other_weights_are_refused(tiny_onnx_exports, tmp_path):
    other = write_tiny_checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(ArtifactError, match="exported from other weights"):
        build_repository(tmp_path / "repository", str(other), artifacts=tiny_onnx_exports[:1])
    assert not (tmp_path / "repository").exists()


def test_two_exports_for_one_view_size_are_refused(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    copy = shutil.copytree(tiny_onnx_exports[0], tmp_path / "copy")
    with pytest.raises(ArtifactError, match="more than one ONNX export given for view size"):
        build_repository(tmp_path / "repository", str(tiny_checkpoint), artifacts=[tiny_onnx_exports[0], copy])


def test_exports_of_two_dtypes_are_refused_before_anything_is_exported(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    fp16 = tmp_path / "fp16"
    export_onnx(str(tiny_checkpoint), 640, fp16, dtype="fp16")
    with pytest.raises(ArtifactError, match=r"the exports given mix dtypes \['fp16', 'fp32'\]"):
        build_repository(tmp_path / "repository", str(tiny_checkpoint), artifacts=[tiny_onnx_exports[0], fp16])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp16"]


def test_a_view_model_that_takes_another_dtype_than_encode_sends_is_reported(cpu_repository, tmp_path):
    repository = shutil.copytree(cpu_repository, tmp_path / "repository")
    config = repository / "encode" / "config.pbtxt"
    config.write_text(config.read_text().replace('string_value: "float32"', 'string_value: "float16"'))
    with pytest.raises(RepositoryError) as raised:
        check_repository(repository, "cpu")
    assert raised.value.problems == [
        f"encoder_{view}: takes TYPE_FP32, encode sends TYPE_FP16 (view_dtype)" for view in VIEW_SIZES
    ]


def test_the_command_builds_a_repository_from_given_exports(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    out = tmp_path / "repository"
    command = ["repository", "build", "--model", str(tiny_checkpoint), "--out", str(out), "--artifacts"]
    result = _dsocr(*command, *map(str, tiny_onnx_exports))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing exported
    assert result.stdout.startswith(f"dsocr repository build: {out} ")
    check_repository(out, "cpu")


def test_a_gpu_build_without_engines_or_tensorrt_fails_in_one_line(tiny_checkpoint, tmp_path):
    pytest.importorskip("dsocr.export.tensorrt")
    from dsocr.export.tensorrt import TensorRTUnavailable, require_tensorrt

    try:
        require_tensorrt()
        pytest.skip("TensorRT and a GPU are present here: the build would succeed")
    except TensorRTUnavailable:
        pass
    result = _dsocr(
        "repository", "build", "--model", str(tiny_checkpoint), "--target", "gpu", "--out", str(tmp_path / "r")
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("dsocr: error: ") and "TensorRT" in line
    assert not (tmp_path / "r").exists()


def _dsocr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsocr.cli", *args], capture_output=True, text=True, timeout=300)
