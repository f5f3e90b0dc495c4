"""``dsocr export onnx``: DeepEncoder per view size as ONNX, checked, matched against PyTorch, with its lineage."""

import json
import subprocess
import sys

import onnx
import pytest
import torch

from dsocr.contract import VIEW_SIZES
from dsocr.export import onnx as onnx_export
from dsocr.export.onnx import WEIGHTS_FILE, ExportError, export_onnx, random_views
from dsocr.model.checkpoint import load_model
from dsocr.model.deepencoder import resolve_positions
from dsocr.model.source import weights_sha256
from dsocr.triton.artifacts import ArtifactError, read_metadata
from dsocr.triton.backend import ONNX_FILE


@pytest.fixture(scope="module")
def records(tiny_onnx_exports) -> dict[int, dict]:
    return {view: read_metadata(folder, "onnx") for view, folder in zip(VIEW_SIZES, tiny_onnx_exports)}


@pytest.mark.parametrize("view", VIEW_SIZES)
def test_resolving_position_tables_for_a_view_keeps_the_encoders_output_for_it_exactly(tiny_checkpoint, view):
    encoder = load_model(tiny_checkpoint, parts=("encoder",)).encoder
    views = random_views(view, 2, seed=view)
    with torch.inference_mode():
        expected = encoder(views)
        assert torch.equal(resolve_positions(encoder, view)(views), expected)


def test_every_view_size_exports_within_the_fp32_parity_limit(records):
    for view, record in records.items():
        assert record["view"] == view and record["dtype"] == "fp32"
        assert record["parity"]["batch_sizes"] == list(onnx_export.parity_batches(view))
        assert 0 < record["parity"]["relative_error"] <= record["parity"]["tolerance"] == 1e-4


def test_the_metadata_names_the_checkpoint_weights_and_the_tools(records, tiny_checkpoint):
    record = records[640]
    assert record["source"]["model_id"] == str(tiny_checkpoint.resolve())
    assert record["source"]["safetensors_sha256"] == weights_sha256(tiny_checkpoint)
    assert record["opset"] == onnx_export.OPSET
    assert all(record["versions"][tool] for tool in ("dsocr", "torch", "onnx", "onnxscript", "onnxruntime"))
    assert record["output"]["shape"] == ["batch", (640 // 64) ** 2, 64]  # the tiny model's 64-wide LM space


def test_the_parity_check_runs_batch_sizes_the_graph_was_not_traced_with():
    for view in VIEW_SIZES:
        batches = onnx_export.parity_batches(view)
        assert 1 in batches and onnx_export.EXAMPLE_BATCH not in batches


def test_the_graph_has_a_dynamic_batch_and_no_position_table_resizes(tiny_onnx_exports):
    model = onnx.load(str(tiny_onnx_exports[0] / ONNX_FILE), load_external_data=False)
    [pixel_values] = model.graph.input
    batch, *fixed = pixel_values.type.tensor_type.shape.dim
    assert batch.dim_param and [d.dim_value for d in fixed] == [3, VIEW_SIZES[0], VIEW_SIZES[0]]
    assert "Resize" not in {node.op_type for node in model.graph.node}
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def test_an_fp16_export_runs_in_fp16_within_its_parity_limit(tiny_checkpoint, tmp_path):
    record = export_onnx(str(tiny_checkpoint), 512, tmp_path / "fp16", dtype="fp16")
    assert record["input"]["dtype"] == "fp16"
    assert 0 < record["parity"]["relative_error"] <= record["parity"]["tolerance"] == 1e-2
    model = onnx.load(str(tmp_path / "fp16" / ONNX_FILE), load_external_data=False)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16


def test_an_export_over_the_parity_limit_writes_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(onnx_export.TOLERANCE, "fp32", 0.0)
    with pytest.raises(ExportError, match=r"differs from PyTorch by .* over the fp32 limit"):
        export_onnx(str(tiny_checkpoint), 512, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy


def test_an_export_into_a_folder_with_files_is_refused(tiny_checkpoint, tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not empty"):
        export_onnx(str(tiny_checkpoint), 512, tmp_path)


def test_a_view_size_no_mode_uses_is_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="view 768: DeepSeek-OCR's view sizes are 512, 640, 1024, 1280"):
        export_onnx(str(tiny_checkpoint), 768, tmp_path / "out")


def test_a_folder_missing_a_listed_file_is_not_an_artifact(tiny_onnx_exports, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "metadata.json").write_text((tiny_onnx_exports[0] / "metadata.json").read_text())
    (folder / ONNX_FILE).write_bytes((tiny_onnx_exports[0] / ONNX_FILE).read_bytes())
    with pytest.raises(ArtifactError, match=f"{WEIGHTS_FILE} missing"):
        read_metadata(folder, "onnx")


def test_an_onnx_folder_is_not_taken_for_an_engine(tiny_onnx_exports):
    with pytest.raises(ArtifactError, match="holds a 'onnx' artifact, not 'tensorrt'"):
        read_metadata(tiny_onnx_exports[0], "tensorrt")


def test_the_command_exports_and_prints_the_parity(tiny_checkpoint, tmp_path):
    out = tmp_path / "encoder-640"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dsocr.cli",
            "export",
            "onnx",
            "--model",
            str(tiny_checkpoint),
            "--view",
            "640",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith(f"{out}: onnx 640px fp32, relative error ") and first.endswith("(limit 0.0001)")
    assert json.loads("\n".join(rest))["parity"] == read_metadata(out, "onnx")["parity"]
