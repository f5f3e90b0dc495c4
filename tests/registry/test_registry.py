"""Registering checkpoints on a real MLflow server, and resolving ``models:/`` URIs back to their weights."""

import json
from pathlib import Path

import pytest

from dsocr.cli import main
from dsocr.model.source import weights_sha256
from dsocr.model.tiny import write_tiny_checkpoint
from dsocr.registry.registry import RegistryError, get_version, register, resolve_model_uri, set_alias
from tests.evaluation.test_runner import two_line_dataset

pytestmark = pytest.mark.mlflow


def test_a_registered_checkpoint_carries_its_weight_digests(mlflow_uri, model_name, tiny_checkpoint):
    version = register(mlflow_uri, model_name, str(tiny_checkpoint))
    assert version.version == "1"
    assert get_version(mlflow_uri, model_name, "1").weights == weights_sha256(tiny_checkpoint)


def test_a_hub_model_is_registered_by_pinned_id_without_download(mlflow_uri, model_name):
    version = register(mlflow_uri, model_name, "deepseek-ai/DeepSeek-OCR@abc123")
    assert resolve_model_uri(f"models:/{model_name}/{version.version}", mlflow_uri) == "deepseek-ai/DeepSeek-OCR@abc123"


def test_an_unpinned_hub_id_is_refused(mlflow_uri, model_name, capsys):
    assert (
        main(
            [
                "registry",
                "register",
                "--name",
                model_name,
                "--model",
                "deepseek-ai/DeepSeek-OCR",
                "--mlflow",
                mlflow_uri,
            ]
        )
        == 2
    )
    assert "ID@REVISION" in capsys.readouterr().err


def test_an_alias_resolves_to_a_local_copy_of_the_same_weights(mlflow_uri, model_name, tiny_checkpoint):
    set_alias(mlflow_uri, register(mlflow_uri, model_name, str(tiny_checkpoint)), "champion")
    local = resolve_model_uri(f"models:/{model_name}@champion", mlflow_uri)
    assert weights_sha256(Path(local)) == weights_sha256(tiny_checkpoint)


def test_a_damaged_local_copy_is_downloaded_again(mlflow_uri, model_name, tiny_checkpoint):

    register(mlflow_uri, model_name, str(tiny_checkpoint))
    local = Path(resolve_model_uri(f"models:/{model_name}/1", mlflow_uri))
    weights = next(local.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert weights_sha256(Path(resolve_model_uri(f"models:/{model_name}/1", mlflow_uri))) == weights_sha256(
        tiny_checkpoint
    )


def test_an_unknown_alias_is_a_clear_error(mlflow_uri, model_name, tiny_checkpoint):
    register(mlflow_uri, model_name, str(tiny_checkpoint))
    with pytest.raises(RegistryError, match="no alias @champion"):
        resolve_model_uri(f"models:/{model_name}@champion", mlflow_uri)


def test_eval_takes_a_registered_model(mlflow_uri, model_name, tiny_checkpoint, tmp_path, monkeypatch):
    set_alias(mlflow_uri, register(mlflow_uri, model_name, str(tiny_checkpoint)), "champion")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    two_line_dataset(tmp_path / "data")
    flags = [
        "--data",
        str(tmp_path / "data"),
        "--mode",
        "tiny",
        "--max-new-tokens",
        "4",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(["eval", "--model", f"models:/{model_name}@champion", *flags]) == 0
    engine = json.loads((tmp_path / "out" / "metrics.json").read_text())["engine"]
    assert (engine["id"], engine["weights_sha256"]) == (
        f"models:/{model_name}@champion",
        weights_sha256(tiny_checkpoint),
    )


def test_show_lists_versions_with_their_aliases(mlflow_uri, model_name, tmp_path, capsys):
    for seed in (0, 1):
        register(mlflow_uri, model_name, str(write_tiny_checkpoint(tmp_path / str(seed), seed=seed)))
    set_alias(mlflow_uri, get_version(mlflow_uri, model_name, "2"), "champion")
    assert main(["registry", "show", model_name, "--mlflow", mlflow_uri]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines] == [f"{model_name} v1", f"{model_name} v2 @champion"]


def test_an_unreachable_server_is_one_line_and_exit_2(capsys):
    assert main(["registry", "show", "anything", "--mlflow", "http://127.0.0.1:9"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dsocr: error: MLflow:") and len(error.strip().splitlines()) == 1


def test_ocr_takes_a_registered_model(mlflow_uri, model_name, tiny_checkpoint, tmp_path, monkeypatch):
    from dsocr.cli import SAMPLE_PAGE

    set_alias(mlflow_uri, register(mlflow_uri, model_name, str(tiny_checkpoint)), "champion")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    flags = ["--mode", "tiny", "--max-new-tokens", "4", "--out", str(tmp_path / "out")]
    assert main(["ocr", str(SAMPLE_PAGE), "--model", f"models:/{model_name}@champion", *flags]) == 0
    assert (tmp_path / "out" / f"{SAMPLE_PAGE.stem}.md").is_file()


def test_exports_are_registered_with_their_file_hashes(mlflow_uri, model_name, tiny_checkpoint, tiny_onnx_exports):
    from dsocr.model.source import file_sha256

    export = tiny_onnx_exports[0]
    version = register(mlflow_uri, model_name, str(tiny_checkpoint), exports=[export])
    record = json.loads((export / "metadata.json").read_text())
    name = f"onnx-{record['view']}-{record['dtype']}"
    assert version.tags[f"dsocr.export.{name}.sha256.model.onnx"] == file_sha256(export / "model.onnx")


def test_exports_of_other_weights_are_refused(mlflow_uri, model_name, tiny_onnx_exports, tmp_path):
    other = write_tiny_checkpoint(tmp_path / "other", seed=3)
    with pytest.raises(RegistryError, match="other weights"):
        register(mlflow_uri, model_name, str(other), exports=[tiny_onnx_exports[0]])
