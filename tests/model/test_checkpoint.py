import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dsocr.model.checkpoint import load_model
from dsocr.model.config import ModelConfig
from dsocr.model.source import CheckpointError, file_sha256, resolve
from dsocr.model.tiny import write_tiny_checkpoint
from tests.support.parity import checkpoint_tensors


def _state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_tiny_checkpoint_has_the_official_file_layout(tiny_checkpoint):
    names = {p.name for p in tiny_checkpoint.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        "model-00001-of-000001.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    } <= names
    index = json.loads((tiny_checkpoint / "model.safetensors.index.json").read_text())
    tensors = checkpoint_tensors(tiny_checkpoint)
    assert set(index["weight_map"]) == set(tensors)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}


def test_tiny_checkpoint_is_deterministic_for_a_seed(tmp_path):
    first = write_tiny_checkpoint(tmp_path / "a", seed=7)
    second = write_tiny_checkpoint(tmp_path / "b", seed=7)
    other = write_tiny_checkpoint(tmp_path / "c", seed=8)
    for name in ("model-00001-of-000001.safetensors", "tokenizer.json", "config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "model-00001-of-000001.safetensors").read_bytes() != (
        other / "model-00001-of-000001.safetensors"
    ).read_bytes()


def test_tiny_config_records_reduced_sizes_in_the_official_structure(tiny_checkpoint):
    raw = json.loads((tiny_checkpoint / "config.json").read_text())
    assert raw["architectures"] == ["DeepseekOCRForCausalLM"]
    assert raw["language_config"]["hidden_size"] == raw["hidden_size"] == 64
    assert raw["vision_config"]["width"]["sam_vit_b"]["width"] == 32
    assert ModelConfig.from_dict(raw).clip.width == 64


def test_loaded_weights_equal_the_file_contents(tiny_checkpoint):
    model = load_model(tiny_checkpoint, dtype=torch.float32)
    tensors = checkpoint_tensors(tiny_checkpoint)
    assert torch.equal(model.encoder.view_seperator, tensors["model.view_seperator"].float())
    assert torch.equal(model.decoder.lm_head.weight, tensors["lm_head.weight"].float())
    assert torch.equal(
        model.decoder.layers[1].mlp.experts[3].down_proj.weight,
        tensors["model.layers.1.mlp.experts.3.down_proj.weight"].float(),
    )
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())


def test_sharded_checkpoint_loads_the_same_weights(tiny_checkpoint, tmp_path):
    sharded = write_tiny_checkpoint(tmp_path / "sharded", seed=0, max_shard_bytes=200_000)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    single, split = _state(load_model(tiny_checkpoint)), _state(load_model(sharded))
    assert single.keys() == split.keys()
    assert all(torch.equal(single[k], split[k]) for k in single)


def test_loading_only_the_encoder_leaves_the_decoder_unloaded(tiny_checkpoint):
    model = load_model(tiny_checkpoint, parts=("encoder",))
    assert all(not p.is_meta for p in model.encoder.parameters())
    assert all(p.is_meta for p in model.decoder.parameters())


def test_a_bad_checkpoint_reports_missing_unexpected_and_misshaped_tensors_together(tiny_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    shard = broken / "model-00001-of-000001.safetensors"
    tensors = load_file(shard)
    del tensors["model.norm.weight"]
    tensors["model.extra.weight"] = torch.zeros(2)
    tensors["model.image_newline"] = torch.zeros(3)
    save_file(tensors, shard)
    (broken / "model.safetensors.index.json").unlink()
    with pytest.raises(CheckpointError) as err:
        load_model(broken)
    message = str(err.value)
    assert "1 missing: model.norm.weight" in message
    assert "1 unexpected: model.extra.weight" in message
    assert "model.image_newline: checkpoint [3], model [64]" in message


def test_a_position_ids_buffer_from_resaved_checkpoints_is_tolerated(tiny_checkpoint, tmp_path):
    resaved = tmp_path / "resaved"
    shutil.copytree(tiny_checkpoint, resaved)
    save_file({"model.vision_model.embeddings.position_ids": torch.arange(257)[None]}, resaved / "extra.safetensors")
    (resaved / "model.safetensors.index.json").unlink()
    load_model(resaved)


def test_a_directory_with_the_official_full_size_config_is_read_at_full_size(tmp_path):
    shutil.copy(Path(__file__).parents[1] / "data" / "official_config.json", tmp_path / "config.json")
    save_file({"lm_head.weight": torch.zeros(2, 2)}, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path)
    assert "2709 missing" in str(err.value)
    assert "lm_head.weight: checkpoint [2, 2], model [129280, 1280]" in str(err.value)


def test_a_path_that_is_neither_a_directory_nor_a_hub_id_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        resolve(str(tmp_path / "missing" / "dir"))


def test_a_hub_id_resolves_from_the_hub_cache_at_the_pinned_revision(tiny_checkpoint, tmp_path):
    # The hub cache layout huggingface_hub reads offline: refs name a snapshot folder per commit.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--deepseek-ai--DeepSeek-OCR"
    shutil.copytree(tiny_checkpoint, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "v1").write_text(commit)
    code = (
        "from dsocr.model.checkpoint import load_model; from dsocr.model.source import resolve; "
        "s = resolve('deepseek-ai/DeepSeek-OCR@v1'); load_model(s); print(s.model_id, s.revision)"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["deepseek-ai/DeepSeek-OCR", commit]


def test_an_unreachable_hub_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="could not fetch deepseek-ai/DeepSeek-OCR@main"):
        resolve("deepseek-ai/DeepSeek-OCR")


def test_a_files_digest_follows_its_content_when_it_is_rewritten(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"first")
    os.utime(path, ns=(1, 1))
    assert file_sha256(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"other")  # the same size: only the modification time tells the versions apart
    os.utime(path, ns=(2, 2))
    assert file_sha256(path) == hashlib.sha256(b"other").hexdigest()
