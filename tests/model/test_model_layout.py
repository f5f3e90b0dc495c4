"""The full-size model, built on the meta device, has exactly the official checkpoint's tensors."""

from pathlib import Path

import torch

from dsocr.model.config import ModelConfig
from dsocr.model.deepseek_ocr import DeepseekOCR, official_name
from tests.support.official_layout import official_tensor_shapes


def _full_size_model() -> DeepseekOCR:
    with torch.device("meta"):
        return DeepseekOCR(ModelConfig())


def test_full_size_parameter_names_and_shapes_equal_the_official_layout():
    model_shapes = {official_name(n): tuple(p.shape) for n, p in _full_size_model().named_parameters()}
    official = official_tensor_shapes(ModelConfig().to_dict())
    assert sorted(set(official) - set(model_shapes)) == []
    assert sorted(set(model_shapes) - set(official)) == []
    assert {n: s for n, s in model_shapes.items() if official[n] != s} == {}


def test_full_size_model_has_2710_tensors_and_3336106240_parameters():
    params = list(_full_size_model().parameters())
    assert len(params) == 2710
    assert sum(p.numel() for p in params) == 3_336_106_240


def test_full_size_model_has_no_buffers_to_load():
    assert list(_full_size_model().buffers()) == []


def test_the_official_config_round_trips_through_the_reader():
    config = ModelConfig()
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_the_published_config_json_reads_as_the_official_sizes():
    # tests/data/official_config.json transcribes the published file's fields and values.
    assert ModelConfig.from_file(Path(__file__).parents[1] / "data" / "official_config.json") == ModelConfig()
