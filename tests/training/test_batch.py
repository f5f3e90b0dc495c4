"""The training loss and its gradients equal those of transformers' implementations on the same batch, in fp32.

The references are the parity tests' (``unlimited_ocr`` vision stack, ``deepseek_ocr2`` text model), run with
gradients on: a defect anywhere in the backward path (encoder included) shows here before any training run.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from dsocr.cli import SAMPLE_PAGE
from dsocr.contract import resolve_prompt
from dsocr.model.checkpoint import load_model
from dsocr.model.deepseek_ocr import official_name
from dsocr.model.preprocess import prepare_image
from dsocr.model.prompts import build_input_ids
from dsocr.training.batch import answer_loss, make_example
from tests.support.parity import RELATIVE_TOLERANCE, official_state_dict, relative_error
from tests.support.tf5_reference import Tf5Text, Tf5Vision

ANSWERS = ["# Annual Report 2025\nThe quick brown fox.", "<table><tr><td>Revenue</td></tr></table>"]

#: Official tensor name → (reference, its parameter name): the encoder's first and last stages, the image
#: vectors' own parameters, attention, the router, a shared expert, the embeddings and the LM head.
CHOSEN = {
    "model.sam_model.patch_embed.proj.weight": ("vision", "vision_tower.sam_encoder.patch_embed.projection.weight"),
    "model.sam_model.blocks.0.attn.rel_pos_h": ("vision", "vision_tower.sam_encoder.layers.0.attn.rel_pos_h"),
    "model.vision_model.transformer.layers.1.self_attn.out_proj.weight": (
        "vision",
        "vision_tower.vision_encoder.encoder.layers.1.self_attn.out_proj.weight",
    ),
    "model.projector.layers.weight": ("vision", "multi_modal_projector.weight"),
    "model.image_newline": ("vision", "image_newline"),
    "model.view_seperator": ("vision", "view_separator"),
    "model.embed_tokens.weight": ("text", "embed_tokens.weight"),
    "model.layers.1.self_attn.q_proj.weight": ("text", "layers.1.self_attn.q_proj.weight"),
    "model.layers.2.mlp.gate.weight": ("text", "layers.2.mlp.gate.weight"),
    "model.layers.2.mlp.shared_experts.down_proj.weight": ("text", "layers.2.mlp.shared_experts.down_proj.weight"),
    "lm_head.weight": ("lm_head", "weight"),
}


@pytest.fixture(scope="module")
def pages(tiny_model):
    prompt = resolve_prompt("markdown")
    return [(prepare_image(SAMPLE_PAGE, mode), prompt, answer) for mode, answer in zip(("tiny", "base"), ANSWERS)]


def _ours(tiny_checkpoint, tiny_model, pages):
    model = load_model(tiny_checkpoint).requires_grad_(True)
    examples = [make_example(tiny_model.tokenizer, *page) for page in pages]
    loss, tokens = answer_loss(model, tiny_model.tokenizer.image_id, examples)
    (loss / tokens).backward()
    grads = {official_name(name): p.grad for name, p in model.named_parameters() if official_name(name) in CHOSEN}
    return float(loss.detach() / tokens), grads


def _reference(tiny_checkpoint, tiny_model, pages):
    state = official_state_dict(tiny_checkpoint)
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    vision, text = Tf5Vision(state, config), Tf5Text(state, config)
    modules = {"vision": vision.model, "text": text.model, "lm_head": text.lm_head}
    for module in modules.values():
        module.requires_grad_(True)
    image_id = tiny_model.tokenizer.image_id
    total, count = 0.0, 0
    for image, prompt, answer in pages:
        prompt_ids = build_input_ids(tiny_model.tokenizer, prompt, image.num_placeholders)
        answer_ids = tiny_model.tokenizer.encode(answer) + [tiny_model.tokenizer.eos_id]
        ids = torch.tensor(prompt_ids + answer_ids)
        tiles = image.tiles if len(image.tiles) else None
        features = vision.model.get_image_features(
            pixel_values=image.global_view[None],
            **(
                {}
                if tiles is None
                else {
                    "pixel_values_local": tiles,
                    "num_local_patches": [len(tiles)],
                    "patches_grid": [list(image.grid)],
                }
            ),
            return_dict=True,
        ).pooler_output[0]
        embeds = text.model.embed_tokens(ids).masked_scatter((ids == image_id)[:, None], features)
        hidden = text.model(inputs_embeds=embeds[None], use_cache=False).last_hidden_state[0]
        logits = text.lm_head(hidden[len(prompt_ids) - 1 : -1])
        total = total + F.cross_entropy(logits, ids[len(prompt_ids) :], reduction="sum")
        count += len(answer_ids)
    (total / count).backward()
    grads = {name: modules[where].get_parameter(tf5_name).grad for name, (where, tf5_name) in CHOSEN.items()}
    return float(total.detach() / count), grads


@pytest.fixture(scope="module")
def both(tiny_checkpoint, tiny_model, pages):
    return _ours(tiny_checkpoint, tiny_model, pages), _reference(tiny_checkpoint, tiny_model, pages)


def test_the_loss_equals_the_references_on_a_tiny_and_a_base_page(both):
    (ours, _), (reference, _) = both
    assert abs(ours - reference) <= RELATIVE_TOLERANCE * abs(reference)


@pytest.mark.parametrize("name", CHOSEN)
def test_the_gradient_equals_the_references(both, name):
    (_, ours), (_, reference) = both
    assert reference[name] is not None and reference[name].abs().sum() > 0
    assert relative_error(ours[name], reference[name]) < RELATIVE_TOLERANCE


def test_only_answer_tokens_are_scored(tiny_model, pages):
    examples = [make_example(tiny_model.tokenizer, *page) for page in pages]
    expected = sum(len(tiny_model.tokenizer.encode(answer)) + 1 for _, _, answer in pages)
    assert sum(e.answer_tokens for e in examples) == expected
