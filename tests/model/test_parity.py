"""dsocr against independent implementations in transformers 5.24, on the same random weights in fp32.

The encoder is compared with the ``unlimited_ocr`` vision stack (a DeepSeek-OCR v1 clone), its page layout
with that model's own ``get_image_features``, the decoder with the ``deepseek_ocr2`` text model (the same
MoE decoder), and whole pages, mode by mode, with those two joined.
"""

import json

import pytest
import torch

from dsocr.cli import SAMPLE_PAGE
from dsocr.contract import OcrOptions, resolve_prompt
from dsocr.model.generate import greedy_generate
from dsocr.model.preprocess import prepare_image
from dsocr.model.prompts import build_input_ids
from tests.support.parity import RELATIVE_TOLERANCE, official_state_dict, relative_error
from tests.support.tf5_reference import Tf5Text, Tf5Vision


@pytest.fixture(scope="module")
def references(tiny_checkpoint):
    state = official_state_dict(tiny_checkpoint)
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    return Tf5Vision(state, config), Tf5Text(state, config)


def _page_prompt(tiny_model, mode: str, prompt: str = "markdown"):
    """Our preprocessing and prompt ids for the sample page, shared by both sides of a comparison."""
    image = prepare_image(SAMPLE_PAGE, mode)
    ids = build_input_ids(tiny_model.tokenizer, resolve_prompt(prompt), image.num_placeholders)
    return image, torch.tensor(ids)


@pytest.mark.parametrize("size", [512, 640, 1024, 1280])
def test_encoder_features_match_the_unlimited_ocr_vision_stack(tiny_model, references, size):
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size)).clamp(-1, 1)
    with torch.no_grad():
        ours = tiny_model.model.encoder(pixels)
    assert relative_error(ours, references[0].features(pixels)) < RELATIVE_TOLERANCE


@pytest.mark.parametrize("mode", ["base", "gundam"])
def test_page_layout_matches_unlimited_ocr_image_features(tiny_model, references, mode):
    image = prepare_image(SAMPLE_PAGE, mode)
    ours = tiny_model.image_embeddings(image)
    reference = references[0].image_embeddings(image.global_view, image.tiles, image.grid)
    assert ours.shape[0] == image.num_placeholders
    assert relative_error(ours, reference) < RELATIVE_TOLERANCE


def test_decoder_logits_match_the_deepseek_ocr2_text_model(tiny_model, references):
    embeds = torch.randn(2, 40, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = tiny_model.model.decoder(embeds, torch.arange(40).expand(2, -1))
    assert relative_error(ours, references[1].logits(embeds)) < RELATIVE_TOLERANCE


def test_greedy_tokens_match_the_deepseek_ocr2_text_model_over_48_steps(tiny_model, references):
    image, ids = _page_prompt(tiny_model, "small")
    embeds = tiny_model.model.embed_prompt(ids, tiny_model.tokenizer.image_id, tiny_model.image_embeddings(image))
    [ours] = greedy_generate(tiny_model.model.decoder, embeds[None], 48, eos_id=None)
    assert ours.token_ids == references[1].greedy(embeds[None], 48)


@pytest.mark.parametrize("mode", ["tiny", "small", "base", "large", "gundam"])
def test_a_page_decodes_to_the_reference_tokens_in_every_mode(tiny_model, references, mode):
    vision, text = references
    image, ids = _page_prompt(tiny_model, mode)
    embeds = text.embed(ids[None])[0]
    embeds[ids == tiny_model.tokenizer.image_id] = vision.image_embeddings(image.global_view, image.tiles, image.grid)
    reference = text.greedy(embeds[None], 32)
    eos = tiny_model.tokenizer.eos_id
    expected = reference[: reference.index(eos)] if eos in reference else reference

    result = tiny_model.recognize(SAMPLE_PAGE, OcrOptions(mode=mode, max_new_tokens=32, ngram_size=0))
    assert result.token_ids == expected
    assert result.finish_reason == ("eos" if eos in reference else "length")
    assert result.vision_tokens == image.num_placeholders
