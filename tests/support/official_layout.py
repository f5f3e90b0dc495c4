"""The official DeepSeek-OCR checkpoint layout, written from the facts sheet's §4 table.

This module is an *independent specification*: it knows nothing about dsocr's model code. It derives every
tensor name and shape of ``model-00001-of-000001.safetensors`` from the sizes in a ``config.json`` dict (read through
``dsocr.config.ModelConfig.from_dict``, the only dsocr import), row by row from the table in
/work/shared/reference/deepseek-ocr.md §4. At the official sizes it gives the 2,710 tensors and 3,336,106,240
parameters of the published index.

It also makes deterministic random checkpoints in that layout (``random_official_state_dict``) for parity tests
against the transformers 5.24 reference adapters in ``tf5_reference.py``.
"""

from __future__ import annotations

import math

import torch

from dsocr.model.config import ModelConfig

__all__ = ["official_tensor_shapes", "random_official_state_dict", "subsystem_of", "SUBSYSTEMS"]

# Subsystem names used by ``subsystem_of`` (the "Counts by subsystem" table of §4).
SUBSYSTEMS = (
    "sam",
    "clip",
    "projector",
    "specials",
    "lm_routed_experts",
    "lm_shared_experts",
    "lm_attention",
    "lm_router",
    "lm_norms",
    "lm_dense_mlp",
    "lm_embed_norm_head",
)


def official_tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor of the official checkpoint for this ``config.json`` dict, name -> shape.

    Weight matrices are ``[out, in]``; conv kernels ``[out, in, kh, kw]``. The order follows the table (SAM, CLIP,
    projector, specials, LM); the official file's own order is not alphabetical and not reproduced.
    """
    cfg = ModelConfig.from_dict(config)
    shapes: dict[str, tuple[int, ...]] = {}

    # --- SAM ViT-B stage: model.sam_model.* -------------------------------------------------------------------
    sam = cfg.sam
    w = sam.width
    sam_head_dim = w // sam.heads
    grid = sam.image_size // sam.patch_size  # 64 at 1024 px / patch 16
    p = "model.sam_model."
    shapes[p + "patch_embed.proj.weight"] = (w, 3, sam.patch_size, sam.patch_size)
    shapes[p + "patch_embed.proj.bias"] = (w,)
    shapes[p + "pos_embed"] = (1, grid, grid, w)
    for b in range(sam.layers):
        q = f"{p}blocks.{b}."
        shapes[q + "norm1.weight"] = (w,)
        shapes[q + "norm1.bias"] = (w,)
        shapes[q + "attn.qkv.weight"] = (3 * w, w)
        shapes[q + "attn.qkv.bias"] = (3 * w,)
        shapes[q + "attn.proj.weight"] = (w, w)
        shapes[q + "attn.proj.bias"] = (w,)
        # [2*window-1, head_dim] in windowed blocks, [2*(image_size/patch)-1, head_dim] in global blocks.
        span = grid if b in sam.global_attn_indexes else sam.window_size
        shapes[q + "attn.rel_pos_h"] = (2 * span - 1, sam_head_dim)
        shapes[q + "attn.rel_pos_w"] = (2 * span - 1, sam_head_dim)
        shapes[q + "norm2.weight"] = (w,)
        shapes[q + "norm2.bias"] = (w,)
        shapes[q + "mlp.lin1.weight"] = (sam.mlp_dim, w)
        shapes[q + "mlp.lin1.bias"] = (sam.mlp_dim,)
        shapes[q + "mlp.lin2.weight"] = (w, sam.mlp_dim)
        shapes[q + "mlp.lin2.bias"] = (w,)
    neck = sam.neck_channels
    shapes[p + "neck.0.weight"] = (neck, w, 1, 1)
    shapes[p + "neck.1.weight"] = (neck,)
    shapes[p + "neck.1.bias"] = (neck,)
    shapes[p + "neck.2.weight"] = (neck, neck, 3, 3)
    shapes[p + "neck.3.weight"] = (neck,)
    shapes[p + "neck.3.bias"] = (neck,)
    c2, c3 = sam.downsample_channels
    shapes[p + "net_2.weight"] = (c2, neck, 3, 3)
    shapes[p + "net_3.weight"] = (c3, c2, 3, 3)

    # --- CLIP-L stage: model.vision_model.* -------------------------------------------------------------------
    clip = cfg.clip
    c = clip.width
    p = "model.vision_model."
    shapes[p + "embeddings.class_embedding"] = (c,)
    shapes[p + "embeddings.patch_embedding.weight"] = (c, 3, clip.patch_size, clip.patch_size)  # unused
    shapes[p + "embeddings.position_embedding.weight"] = ((clip.image_size // clip.patch_size) ** 2 + 1, c)
    shapes[p + "pre_layrnorm.weight"] = (c,)
    shapes[p + "pre_layrnorm.bias"] = (c,)
    for layer in range(clip.layers):
        q = f"{p}transformer.layers.{layer}."
        shapes[q + "self_attn.qkv_proj.weight"] = (3 * c, c)
        shapes[q + "self_attn.qkv_proj.bias"] = (3 * c,)
        shapes[q + "self_attn.out_proj.weight"] = (c, c)
        shapes[q + "self_attn.out_proj.bias"] = (c,)
        shapes[q + "layer_norm1.weight"] = (c,)
        shapes[q + "layer_norm1.bias"] = (c,)
        shapes[q + "mlp.fc1.weight"] = (clip.intermediate_size, c)
        shapes[q + "mlp.fc1.bias"] = (clip.intermediate_size,)
        shapes[q + "mlp.fc2.weight"] = (c, clip.intermediate_size)
        shapes[q + "mlp.fc2.bias"] = (c,)
        shapes[q + "layer_norm2.weight"] = (c,)
        shapes[q + "layer_norm2.bias"] = (c,)

    # --- projector and the two special vectors ----------------------------------------------------------------
    shapes["model.projector.layers.weight"] = (cfg.n_embed, cfg.projector_input_dim)
    shapes["model.projector.layers.bias"] = (cfg.n_embed,)
    shapes["model.image_newline"] = (cfg.n_embed,)
    shapes["model.view_seperator"] = (cfg.n_embed,)  # sic

    # --- DeepSeek-MoE language model --------------------------------------------------------------------------
    d = cfg.decoder
    h = d.hidden_size
    head_dim = h // d.num_attention_heads
    q_out = d.num_attention_heads * head_dim
    kv_out = d.num_key_value_heads * head_dim
    shapes["model.embed_tokens.weight"] = (d.vocab_size, h)
    for n in range(d.num_hidden_layers):
        q = f"model.layers.{n}."
        shapes[q + "self_attn.q_proj.weight"] = (q_out, h)
        shapes[q + "self_attn.k_proj.weight"] = (kv_out, h)
        shapes[q + "self_attn.v_proj.weight"] = (kv_out, h)
        shapes[q + "self_attn.o_proj.weight"] = (h, q_out)
        if n < d.first_k_dense_replace:
            shapes[q + "mlp.gate_proj.weight"] = (d.intermediate_size, h)
            shapes[q + "mlp.up_proj.weight"] = (d.intermediate_size, h)
            shapes[q + "mlp.down_proj.weight"] = (h, d.intermediate_size)
        else:
            mi = d.moe_intermediate_size
            shapes[q + "mlp.gate.weight"] = (d.n_routed_experts, h)
            for e in range(d.n_routed_experts):
                shapes[q + f"mlp.experts.{e}.gate_proj.weight"] = (mi, h)
                shapes[q + f"mlp.experts.{e}.up_proj.weight"] = (mi, h)
                shapes[q + f"mlp.experts.{e}.down_proj.weight"] = (h, mi)
            if d.n_shared_experts:
                shared = d.n_shared_experts * mi  # ONE MLP of width n_shared * moe_intermediate
                shapes[q + "mlp.shared_experts.gate_proj.weight"] = (shared, h)
                shapes[q + "mlp.shared_experts.up_proj.weight"] = (shared, h)
                shapes[q + "mlp.shared_experts.down_proj.weight"] = (h, shared)
        shapes[q + "input_layernorm.weight"] = (h,)
        shapes[q + "post_attention_layernorm.weight"] = (h,)
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (d.vocab_size, h)
    return shapes


def subsystem_of(name: str) -> str:
    """Which row of §4's "Counts by subsystem" table an official tensor name belongs to."""
    if name.startswith("model.sam_model."):
        return "sam"
    if name.startswith("model.vision_model."):
        return "clip"
    if name.startswith("model.projector."):
        return "projector"
    if name in ("model.image_newline", "model.view_seperator"):
        return "specials"
    if name in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"):
        return "lm_embed_norm_head"
    if name.startswith("model.layers."):
        if ".mlp.experts." in name:
            return "lm_routed_experts"
        if ".mlp.shared_experts." in name:
            return "lm_shared_experts"
        if ".self_attn." in name:
            return "lm_attention"
        if name.endswith(".mlp.gate.weight"):
            return "lm_router"
        if name.endswith("layernorm.weight"):
            return "lm_norms"
        if ".mlp." in name:
            return "lm_dense_mlp"
    raise ValueError(f"not an official tensor name: {name}")


def _fan_in(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:])


def random_official_state_dict(config: dict, seed: int) -> dict[str, torch.Tensor]:
    """A deterministic fp32 checkpoint in the official layout with weights that keep the tiny model well-conditioned.

    * LayerNorm / RMSNorm weights ~ 1 + N(0, 0.05²), LayerNorm and other biases ~ N(0, 0.02²).
    * Matrices and conv kernels ~ N(0, 1/fan_in) (so every projection keeps activations O(1)); the residual-branch
      output projections get half that gain so the tiny stacks do not blow up.
    * Position tables (SAM abs/rel-pos, CLIP positions) ~ N(0, 0.1²); class embedding, token embeddings and the
      special vectors ~ N(0, 1).
    * Router weights ~ N(0, (4/sqrt(H))²): router logits have a spread of ~4, so the top-k choice is rarely a
      near-tie (gaps far above fp32 rounding).
    * lm_head ~ N(0, (3/sqrt(H))²): logits spread ~3, so greedy argmax is robust to 1e-5 differences.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, shape in official_tensor_shapes(config).items():

        def normal(std: float, mean: float = 0.0) -> torch.Tensor:
            return torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean

        last = name.rsplit(".", 1)[-1]
        if name.endswith(
            (
                "norm1.weight",
                "norm2.weight",
                "neck.1.weight",
                "neck.3.weight",
                "pre_layrnorm.weight",
                "layernorm.weight",
                "model.norm.weight",
            )
        ):
            t = normal(0.05, 1.0)
        elif last == "bias":
            t = normal(0.02)
        elif last in ("pos_embed", "rel_pos_h", "rel_pos_w") or name.endswith("position_embedding.weight"):
            t = normal(0.1)
        elif name.endswith(("class_embedding", "embed_tokens.weight", "image_newline", "view_seperator")):
            t = normal(1.0)
        elif name.endswith("mlp.gate.weight"):
            t = normal(4.0 / math.sqrt(shape[1]))
        elif name == "lm_head.weight":
            t = normal(3.0 / math.sqrt(shape[1]))
        else:
            gain = (
                0.5
                if name.endswith(
                    (
                        "attn.proj.weight",
                        "lin2.weight",
                        "out_proj.weight",
                        "fc2.weight",
                        "o_proj.weight",
                        "down_proj.weight",
                    )
                )
                else 1.0
            )
            t = normal(gain / math.sqrt(_fan_in(shape)))
        out[name] = t.contiguous()
    return out
