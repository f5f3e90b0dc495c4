"""Self-checks of the parity-test reference side: the official layout spec and the transformers 5.24 adapters."""

from __future__ import annotations

import collections
import math

import pytest
import torch

from dsocr.model.config import ModelConfig
from dsocr.model.tiny import tiny_config
from tests.support.official_layout import official_tensor_shapes, random_official_state_dict, subsystem_of
from tests.support.tf5_reference import CLIP_PATCH_EMBEDDING, Tf5Text, Tf5Vision

torch.set_num_threads(min(2, torch.get_num_threads()))


def placeholder_count(global_size: int, grid: tuple[int, int] = (1, 1), tile_size: int = 640) -> int:
    """§5.6: q(q+1)+1, plus (q2·th)(q2·tw+1) when tiled."""
    q = global_size // 64
    n = q * (q + 1) + 1
    tw, th = grid
    if tw > 1 or th > 1:
        q2 = tile_size // 64
        n += (q2 * th) * (q2 * tw + 1)
    return n


@pytest.fixture(scope="module")
def tiny():
    config = tiny_config(512).to_dict()
    return config, random_official_state_dict(config, seed=1234)


@pytest.fixture(scope="module")
def vision(tiny):
    config, sd = tiny
    return Tf5Vision(sd, config)


@pytest.fixture(scope="module")
def text(tiny):
    config, sd = tiny
    return Tf5Text(sd, config)


def _pixels(*shape: int, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# (a) -----------------------------------------------------------------------------------------------------------


def test_official_layout_matches_checkpoint_index():
    shapes = official_tensor_shapes(ModelConfig().to_dict())
    assert len(shapes) == 2710
    assert sum(math.prod(s) for s in shapes.values()) == 3_336_106_240
    counts = collections.Counter(subsystem_of(n) for n in shapes)
    assert counts == {
        "sam": 179,
        "clip": 293,
        "projector": 2,
        "specials": 2,
        "lm_routed_experts": 2112,
        "lm_shared_experts": 33,
        "lm_attention": 48,
        "lm_router": 11,
        "lm_norms": 24,
        "lm_dense_mlp": 3,
        "lm_embed_norm_head": 3,
    }
    assert sum(v for k, v in counts.items() if k.startswith("lm_")) == 2234
    vision = sum(math.prod(s) for n, s in shapes.items() if not subsystem_of(n).startswith("lm_"))
    assert vision == 401_372_160
    # Spot checks straight from the §4 table.
    assert shapes["model.sam_model.pos_embed"] == (1, 64, 64, 768)
    assert shapes["model.sam_model.blocks.0.attn.rel_pos_h"] == (27, 64)
    assert shapes["model.sam_model.blocks.2.attn.rel_pos_w"] == (127, 64)
    assert shapes["model.sam_model.blocks.11.attn.rel_pos_h"] == (127, 64)
    assert shapes["model.sam_model.net_3.weight"] == (1024, 512, 3, 3)
    assert shapes["model.vision_model.embeddings.position_embedding.weight"] == (257, 1024)
    assert shapes["model.vision_model.transformer.layers.23.self_attn.qkv_proj.weight"] == (3072, 1024)
    assert shapes["model.projector.layers.weight"] == (1280, 2048)
    assert shapes["model.view_seperator"] == (1280,)
    assert shapes["model.layers.0.mlp.gate_proj.weight"] == (6848, 1280)
    assert shapes["model.layers.11.mlp.shared_experts.up_proj.weight"] == (1792, 1280)
    assert shapes["model.layers.1.mlp.experts.63.down_proj.weight"] == (1280, 896)
    assert shapes["model.layers.5.mlp.gate.weight"] == (64, 1280)
    assert shapes["lm_head.weight"] == (129280, 1280)


def test_random_state_dict_is_deterministic_and_matches_layout(tiny):
    config, sd = tiny
    shapes = official_tensor_shapes(config)
    assert list(sd) == list(shapes)
    assert all(tuple(t.shape) == shapes[n] and t.dtype == torch.float32 for n, t in sd.items())
    again = random_official_state_dict(config, seed=1234)
    assert all(torch.equal(sd[n], again[n]) for n in sd)
    other = random_official_state_dict(config, seed=1235)
    assert not torch.equal(sd["lm_head.weight"], other["lm_head.weight"])


# (b) -----------------------------------------------------------------------------------------------------------


def test_vision_adapter_loads_strictly_and_runs(vision, tiny):
    config, _ = tiny
    cfg = ModelConfig.from_dict(config)
    feats = vision.features(_pixels(2, 3, 1024, 1024, seed=0))
    assert feats.shape == (2, 16 * 16, cfg.n_embed)
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
    tile_feats = vision.features(_pixels(1, 3, 640, 640, seed=1))
    assert tile_feats.shape == (1, 10 * 10, cfg.n_embed) and torch.isfinite(tile_feats).all()


def test_text_adapter_loads_strictly_and_runs(text, tiny):
    config, _ = tiny
    d = ModelConfig.from_dict(config).decoder
    embeds = torch.randn(2, 7, d.hidden_size, generator=torch.Generator().manual_seed(2))
    logits = text.logits(embeds)
    assert logits.shape == (2, 7, d.vocab_size)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert text.model.config.mlp_layer_types == ["dense"] + ["sparse"] * (d.num_hidden_layers - 1)


def test_adapters_reject_missing_or_extra_tensors(tiny):
    config, sd = tiny
    missing = dict(sd)
    del missing["model.sam_model.blocks.1.attn.rel_pos_h"]
    with pytest.raises((AssertionError, KeyError)):
        Tf5Vision(missing, config)
    missing = dict(sd)
    del missing["model.layers.2.mlp.experts.3.up_proj.weight"]
    with pytest.raises((AssertionError, KeyError)):
        Tf5Text(missing, config)
    extra = dict(sd)
    extra["model.layers.0.mlp.bogus.weight"] = torch.zeros(1)
    with pytest.raises(AssertionError):
        Tf5Text(extra, config)
    with pytest.raises(AssertionError):
        Tf5Vision(extra, config)
    # The one official tensor TF5 has no place for is allowed to be absent or present.
    without_patch = {k: v for k, v in sd.items() if k != CLIP_PATCH_EMBEDDING}
    Tf5Vision(without_patch, config)


def test_attention_implementations_agree(tiny, vision, text):
    config, sd = tiny
    pixels = _pixels(1, 3, 640, 640, seed=3)
    eager_vision = Tf5Vision(sd, config, attn_implementation="eager")
    torch.testing.assert_close(eager_vision.features(pixels), vision.features(pixels), rtol=1e-4, atol=1e-4)
    embeds = torch.randn(1, 9, 64, generator=torch.Generator().manual_seed(4))
    eager_text = Tf5Text(sd, config, attn_implementation="eager")
    torch.testing.assert_close(eager_text.logits(embeds), text.logits(embeds), rtol=1e-4, atol=1e-4)


# (c) -----------------------------------------------------------------------------------------------------------


def test_greedy_with_cache_matches_repeated_full_forward(text):
    embeds = torch.randn(1, 12, 64, generator=torch.Generator().manual_seed(5))
    cached = text.greedy(embeds, steps=8)
    seq = embeds
    uncached = []
    for _ in range(8):
        token = int(text.logits(seq)[0, -1].argmax())
        uncached.append(token)
        seq = torch.cat([seq, text.embed(torch.tensor([[token]]))], dim=1)
    assert cached == uncached
    assert len(set(cached)) > 1  # not a degenerate constant stream


# (d) -----------------------------------------------------------------------------------------------------------


def test_image_embeddings_untiled_length_and_layout(vision):
    global_view = _pixels(3, 1024, 1024, seed=6)
    emb = vision.image_embeddings(global_view, None, (1, 1))
    assert emb.shape == (placeholder_count(1024), 64) == (273, 64)
    # §2.6 by hand: 16 rows of 16 features + newline, then the separator.
    feats = vision.features(global_view[None])[0].reshape(16, 16, -1)
    newline = vision.model.image_newline
    expected = torch.cat(
        [torch.cat([feats, newline.expand(16, 1, -1)], dim=1).reshape(-1, 64), vision.model.view_separator[None]]
    )
    torch.testing.assert_close(emb, expected, rtol=0, atol=0)


def test_image_embeddings_tiled_length_and_layout(vision):
    tw, th = 2, 3
    global_view = _pixels(3, 1024, 1024, seed=7)
    tiles = _pixels(tw * th, 3, 640, 640, seed=8)
    emb = vision.image_embeddings(global_view, tiles, (tw, th))
    assert emb.shape == (placeholder_count(1024, (tw, th)), 64) == (903, 64)
    # §2.6 by hand: local mosaic (row-major tiles, newline after every mosaic row), global grid, separator.
    newline = vision.model.image_newline
    tile_feats = vision.features(tiles).reshape(th, tw, 10, 10, 64)
    rows = []
    for r in range(th * 10):
        rows.append(torch.cat([tile_feats[r // 10, c, r % 10] for c in range(tw)] + [newline[None]]))
    global_feats = vision.features(global_view[None])[0].reshape(16, 16, 64)
    rows += [torch.cat([global_feats[r], newline[None]]) for r in range(16)]
    expected = torch.cat(rows + [vision.model.view_separator[None]])
    torch.testing.assert_close(emb, expected, rtol=1e-5, atol=1e-5)
