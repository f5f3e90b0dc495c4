"""The page contract: one description of the options, their defaults and checks, and the ensemble's names."""

import subprocess
import sys

import pytest

from dsocr.contract import (
    ENSEMBLE,
    IMAGE_INPUT,
    MODES,
    OPTION_INPUTS,
    OUTPUTS,
    RETRY_NGRAM,
    InvalidOptions,
    OcrOptions,
    option_inputs,
)
from dsocr.triton.repository import TEMPLATE, read_config


def test_the_defaults_are_deepseeks_serving_settings():
    options = OcrOptions()
    assert (options.mode, options.prompt, options.max_new_tokens, options.max_tiles) == ("gundam", "markdown", 8192, 6)
    assert (options.ngram_size, options.ngram_window, options.retry_ngram) == (30, 90, RETRY_NGRAM)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"mode": "huge"}, "mode: Input should be 'tiny'"),
        ({"max_new_tokens": 0}, "max_new_tokens: Input should be greater than or equal to 1"),
        ({"max_tiles": 1}, "max_tiles: Input should be greater than or equal to 2"),
        ({"prompt": "locate"}, "the 'locate' prompt needs ref"),
        ({"prompt": "free", "ref": "Total"}, "ref is only used by the 'locate' prompt"),
        ({"prompt": "two <image> <image>"}, "exactly one <image>"),
        ({"ngram_size": 30, "ngram_window": 10}, "ngram_window (10) must be at least ngram_size (30)"),
        ({"temperature": 1.0}, "temperature: Extra inputs are not permitted"),
    ],
)
def test_invalid_options_are_refused_with_one_line_naming_the_field(values, complaint):
    with pytest.raises(InvalidOptions) as raised:
        OcrOptions.checked(**values)
    assert complaint in str(raised.value) and "\n" not in str(raised.value)


def test_an_empty_ref_is_no_ref():
    assert OcrOptions(ref="").ref is None


def test_options_are_frozen_so_a_request_cannot_change_another_pages_settings():
    with pytest.raises(ValueError):
        OcrOptions().mode = "tiny"


def test_every_option_but_retry_travels_to_the_ensemble_as_its_tensor():
    options = OcrOptions(mode="base", prompt="locate", ref="Total", max_new_tokens=7, max_tiles=9, ngram_size=0)
    assert option_inputs(options) == {
        "MODE": "base",
        "PROMPT": "locate",
        "REF": "Total",
        "MAX_TILES": 9,
        "MAX_NEW_TOKENS": 7,
        "NGRAM_SIZE": 0,
        "NGRAM_WINDOW": 90,
    }
    assert set(OPTION_INPUTS.values()) == set(OcrOptions.model_fields) - {"retry"}


def test_the_ensemble_template_declares_exactly_the_contracts_tensors():
    config = read_config(TEMPLATE / ENSEMBLE / "config.pbtxt")
    assert {tensor.name for tensor in config.input} == {IMAGE_INPUT, *OPTION_INPUTS}
    assert [tensor.name for tensor in config.output] == list(OUTPUTS)


def test_every_option_is_a_flag_of_dsocr_ocr():
    help_text = subprocess.run(
        [sys.executable, "-m", "dsocr.cli", "ocr", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in OcrOptions.model_fields:
        assert f"--{name.replace('_', '-')}" in help_text
    assert "--no-retry" in help_text
    assert "{" + ",".join(MODES) + "}" in help_text
