"""Reference implementations of DeepSeek-OCR v1, built from transformers 5.24 classes, for parity tests.

Both adapters take an *official-layout* state dict (names as in the published ``model-00001-of-000001.safetensors``,
see ``official_layout.py``) plus the ``config.json`` dict, rename/fuse the tensors the way the TF5 conversion
mapping does (facts sheet §11.2), and load them **strictly** into stock TF5 modules. Nothing here touches dsocr's
model code; the only dsocr import is ``ModelConfig.from_dict`` to read the sizes out of the config dict.

* ``Tf5Vision``: ``UnlimitedOcrModel`` (a v1-architecture clone: ``vision_tower`` = ``UnlimitedOcrVisionModel``
  (SAM-B + CLIP-L + [CLIP ‖ SAM] concat), ``multi_modal_projector``, ``image_newline``, ``view_separator``; its
  ``language_model`` is loaded too so that the load is strict, but is not used). The token layout comes from
  TF5's own ``UnlimitedOcrModel.get_image_features``.
* ``Tf5Text``: ``DeepseekOcr2TextModel`` (plain MHA + rotate-half RoPE + DeepSeek-MoE, causal mask, no sliding
  window) plus a separate, untied ``nn.Linear`` lm_head.

Everything runs in float32, eval mode, under ``torch.no_grad``; attention is SDPA by default (``"eager"`` also
works), and the MoE experts use TF5's ``"eager"`` experts implementation (the per-expert loop in the modeling
file) rather than the default ``grouped_mm``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import DynamicCache
from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2TextConfig
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import DeepseekOcr2TextModel
from transformers.models.unlimited_ocr.configuration_unlimited_ocr import (
    UnlimitedOcrConfig,
    UnlimitedOcrSamVisionConfig,
    UnlimitedOcrTextConfig,
    UnlimitedOcrVisionConfig,
    UnlimitedOcrVisionEncoderConfig,
)
from transformers.models.unlimited_ocr.modeling_unlimited_ocr import (
    UnlimitedOcrModel,
    UnlimitedOcrSamVisionAttention,
    UnlimitedOcrSamVisionSdpaAttention,
)

from dsocr.model.config import ModelConfig

__all__ = [
    "CLIP_PATCH_EMBEDDING",
    "Tf5Text",
    "Tf5Vision",
    "convert_text_state_dict",
    "convert_vision_state_dict",
    "deepseek_ocr2_text_config",
    "unlimited_ocr_config",
]

# The one official tensor with no home in TF5: CLIP's patch conv, unused by v1 at inference (SAM features replace
# the patch embeddings). TF5's UnlimitedOcrVisionEncoder declares it in `_keys_to_ignore_on_load_unexpected`.
CLIP_PATCH_EMBEDDING = "model.vision_model.embeddings.patch_embedding.weight"


# ------------------------------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------------------------------


def _decoder_kwargs(cfg: ModelConfig) -> dict:
    d = cfg.decoder
    return dict(
        vocab_size=d.vocab_size,
        hidden_size=d.hidden_size,
        intermediate_size=d.intermediate_size,
        moe_intermediate_size=d.moe_intermediate_size,
        num_hidden_layers=d.num_hidden_layers,
        num_attention_heads=d.num_attention_heads,
        num_key_value_heads=d.num_key_value_heads,
        n_routed_experts=d.n_routed_experts,
        n_shared_experts=d.n_shared_experts,
        num_experts_per_tok=d.num_experts_per_tok,
        topk_method="greedy",
        n_group=1,
        topk_group=1,
        routed_scaling_factor=d.routed_scaling_factor,
        mlp_layer_types=["dense" if i < d.first_k_dense_replace else "sparse" for i in range(d.num_hidden_layers)],
        rope_parameters={"rope_type": "default", "rope_theta": d.rope_theta},
        rms_norm_eps=d.rms_norm_eps,
        hidden_act="silu",
        max_position_embeddings=d.max_position_embeddings,
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=False,
        pad_token_id=None,
        bos_token_id=d.bos_token_id,
        eos_token_id=d.eos_token_id,
    )


def _check_decoder_supported(cfg: ModelConfig) -> None:
    # TF5's routers always softmax and never renormalise the top-k weights, like v1 with norm_topk_prob=false.
    if cfg.decoder.norm_topk_prob:
        raise ValueError("the TF5 reference decoders cannot renormalise top-k weights (norm_topk_prob=true)")


def deepseek_ocr2_text_config(config: dict, attn_implementation: str = "sdpa") -> DeepseekOcr2TextConfig:
    """``DeepseekOcr2TextConfig`` configured as the v1 decoder (§11.2(c), option 1)."""
    cfg = ModelConfig.from_dict(config)
    _check_decoder_supported(cfg)
    text = DeepseekOcr2TextConfig(**_decoder_kwargs(cfg))
    text._attn_implementation = attn_implementation
    text._experts_implementation = "eager"
    return text


def unlimited_ocr_config(config: dict, attn_implementation: str = "sdpa") -> UnlimitedOcrConfig:
    """``UnlimitedOcrConfig`` with every SAM / CLIP / projector / LM size taken from the v1 config dict."""
    cfg = ModelConfig.from_dict(config)
    _check_decoder_supported(cfg)
    s, c = cfg.sam, cfg.clip
    sam = UnlimitedOcrSamVisionConfig(
        hidden_size=s.width,
        output_channels=s.neck_channels,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
        num_channels=3,
        image_size=s.image_size,
        patch_size=s.patch_size,
        hidden_act="gelu",  # exact erf GELU
        layer_norm_eps=1e-6,
        qkv_bias=True,
        use_abs_pos=True,
        use_rel_pos=True,
        window_size=s.window_size,
        global_attn_indexes=list(s.global_attn_indexes),
        mlp_dim=s.mlp_dim,
        downsample_channels=list(s.downsample_channels),
    )
    clip = UnlimitedOcrVisionEncoderConfig(
        hidden_size=c.width,
        intermediate_size=c.intermediate_size,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        num_channels=3,
        image_size=c.image_size,
        patch_size=c.patch_size,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    text = UnlimitedOcrTextConfig(
        **_decoder_kwargs(cfg),
        # Plain causal attention on every layer, not Unlimited-OCR's "reference sliding window" default.
        layer_types=["full_attention"] * cfg.decoder.num_hidden_layers,
        sliding_window=128,  # must not be None in this config class; unused with full_attention layers
    )
    full = UnlimitedOcrConfig(
        vision_config=UnlimitedOcrVisionConfig(sam_config=sam, encoder_config=clip),
        text_config=text,
        tie_word_embeddings=False,
    )
    full._attn_implementation = attn_implementation  # recurses into every sub-config
    full._experts_implementation = "eager"
    return full


# ------------------------------------------------------------------------------------------------------------------
# Weight conversion (official names -> TF5 names)
# ------------------------------------------------------------------------------------------------------------------


def _sam_name(rest: str) -> str:
    """model.sam_model.<rest> -> vision_tower.sam_encoder.<renamed> (§11.2(a) table)."""
    parts = rest.split(".")
    if parts[0] == "blocks":
        sub = {"norm1": "layer_norm1", "norm2": "layer_norm2"}.get(parts[2], parts[2])
        return ".".join(["layers", parts[1], sub, *parts[3:]])
    if parts[:2] == ["patch_embed", "proj"]:
        return ".".join(["patch_embed", "projection", *parts[2:]])
    if parts[0] == "neck":
        sub = {"0": "conv1", "1": "layer_norm1", "2": "conv2", "3": "layer_norm2"}[parts[1]]
        return ".".join(["neck", sub, *parts[2:]])
    if parts[0] in ("net_2", "net_3"):
        return ".".join(["proj", {"net_2": "conv1", "net_3": "conv2"}[parts[0]], *parts[1:]])
    if rest == "pos_embed":
        return rest
    raise KeyError(f"unknown SAM tensor model.sam_model.{rest}")


def _fuse_experts(sd: dict[str, torch.Tensor], src: str, n_experts: int) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Per-expert gate/up/down -> fused ``gate_up_proj`` [E, 2I, H] (gate rows, then up rows) and ``down_proj`` [E, H, I]."""
    used = []
    gate_up, down = [], []
    for e in range(n_experts):
        g, u, dn = (f"{src}.experts.{e}.{k}_proj.weight" for k in ("gate", "up", "down"))
        gate_up.append(torch.cat([sd[g], sd[u]], dim=0))
        down.append(sd[dn])
        used += [g, u, dn]
    return torch.stack(gate_up), torch.stack(down), used


def _convert_lm(sd: dict[str, torch.Tensor], cfg: ModelConfig, prefix: str) -> tuple[dict, set]:
    """model.embed_tokens / model.layers / model.norm -> ``prefix`` + TF5 decoder names, experts fused."""
    out, used = {}, set()
    for name, t in sd.items():
        if not name.startswith(("model.embed_tokens.", "model.norm.", "model.layers.")):
            continue
        if ".mlp.experts." in name:
            continue  # fused below
        out[prefix + name[len("model.") :]] = t
        used.add(name)
    d = cfg.decoder
    for n in range(d.first_k_dense_replace, d.num_hidden_layers):
        src = f"model.layers.{n}.mlp"
        gate_up, down, names = _fuse_experts(sd, src, d.n_routed_experts)
        out[f"{prefix}layers.{n}.mlp.experts.gate_up_proj"] = gate_up
        out[f"{prefix}layers.{n}.mlp.experts.down_proj"] = down
        used.update(names)
    return out, used


def convert_vision_state_dict(sd: dict[str, torch.Tensor], config: dict) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Official state dict -> ``UnlimitedOcrModel`` state dict. Returns it and the set of official names consumed."""
    cfg = ModelConfig.from_dict(config)
    out, used = {}, set()
    for name, t in sd.items():
        if name.startswith("model.sam_model."):
            out["vision_tower.sam_encoder." + _sam_name(name[len("model.sam_model.") :])] = t
        elif name.startswith("model.vision_model."):
            if name == CLIP_PATCH_EMBEDDING:
                continue  # no place for it in TF5 (unused at inference by v1 as well)
            rest = name[len("model.vision_model.") :].replace("transformer.", "encoder.", 1)
            base = "vision_tower.vision_encoder." + rest
            if ".self_attn.qkv_proj." in base:
                # Fused [q | k | v] rows: chunk dim 0 into 3 (TF5 conversion: Chunk(dim=0)).
                q, k, v = t.chunk(3, dim=0)
                for part, piece in zip(("q_proj", "k_proj", "v_proj"), (q, k, v)):
                    out[base.replace("qkv_proj", part)] = piece
            else:
                out[base] = t
        elif name.startswith("model.projector.layers."):
            out["multi_modal_projector." + name[len("model.projector.layers.") :]] = t
        elif name == "model.image_newline":
            out["image_newline"] = t
        elif name == "model.view_seperator":
            out["view_separator"] = t
        else:
            continue
        used.add(name)
    lm, lm_used = _convert_lm(sd, cfg, "language_model.")
    out.update(lm)
    used |= lm_used
    return out, used


def convert_text_state_dict(sd: dict[str, torch.Tensor], config: dict) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Official state dict -> ``DeepseekOcr2TextModel`` state dict (lm_head excluded). Returns it and names consumed."""
    return _convert_lm(sd, ModelConfig.from_dict(config), "")


def _load_strict(module: nn.Module, converted: dict[str, torch.Tensor], what: str) -> None:
    result = module.load_state_dict(converted, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise AssertionError(
            f"{what}: missing {sorted(result.missing_keys)}; unexpected {sorted(result.unexpected_keys)}"
        )


def _check_consumed(sd: dict, used: set[str], allowed_unused: set[str], what: str) -> None:
    unused = set(sd) - used - allowed_unused
    if unused:
        raise AssertionError(f"{what}: official tensors with no place in the TF5 model: {sorted(unused)}")


# ------------------------------------------------------------------------------------------------------------------
# Adapters
# ------------------------------------------------------------------------------------------------------------------


class Tf5Vision:
    """The v1 DeepEncoder + projector + special vectors, as TF5's ``UnlimitedOcrModel``.

    ``state_dict`` must be a full official-layout checkpoint: it is loaded strictly (every TF5 parameter is
    provided, every official tensor is consumed) except ``lm_head.weight`` (``UnlimitedOcrModel`` has no LM head;
    TF5 itself ignores it on load) and CLIP's unused ``embeddings.patch_embedding.weight`` (no place in TF5).
    """

    def __init__(self, state_dict: dict[str, torch.Tensor], config: dict, attn_implementation: str = "sdpa"):
        self.config = ModelConfig.from_dict(config)
        self.tf5_config = unlimited_ocr_config(config, attn_implementation)
        self.model = UnlimitedOcrModel(self.tf5_config)
        self.model.to(torch.float32).eval().requires_grad_(False)
        converted, used = convert_vision_state_dict(state_dict, config)
        _check_consumed(state_dict, used, {"lm_head.weight", CLIP_PATCH_EMBEDDING}, "Tf5Vision")
        _load_strict(self.model, {k: v.to(torch.float32) for k, v in converted.items()}, "Tf5Vision")
        want = UnlimitedOcrSamVisionSdpaAttention if attn_implementation == "sdpa" else UnlimitedOcrSamVisionAttention
        for layer in self.model.vision_tower.sam_encoder.layers:
            assert type(layer.attn) is want, type(layer.attn)

    @torch.no_grad()
    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B,3,S,S] float32 -> projected tokens [B, (S/64)², n_embed], row-major over the S/64 × S/64 grid."""
        hidden = self.model.vision_tower(pixel_values.to(torch.float32)).last_hidden_state  # [B, N, clip+sam]
        return self.model.multi_modal_projector(hidden)

    @torch.no_grad()
    def image_embeddings(
        self,
        global_view: torch.Tensor,
        tiles: torch.Tensor | None = None,
        grid: tuple[int, int] = (1, 1),
    ) -> torch.Tensor:
        """One image's LM-input vectors [N, n_embed], laid out by TF5's ``UnlimitedOcrModel.get_image_features``.

        ``global_view``: [3, B, B] float32 (one image, no batch dim). ``tiles``: [n, 3, 640, 640] float32 in
        row-major tile order (tile k at column k % tiles_across, row k // tiles_across), or ``None`` / an empty
        tensor for no tiling. ``grid``: (tiles_across, tiles_down), passed to TF5 as
        ``patches_grid=[[tiles_across, tiles_down]]`` (TF5 documents it as ``(num_columns, num_rows)``).
        """
        pixel_values = global_view.to(torch.float32).unsqueeze(0)
        if tiles is None or tiles.shape[0] == 0:
            out = self.model.get_image_features(pixel_values=pixel_values, return_dict=True)
        else:
            across, down = grid
            if across * down != tiles.shape[0]:
                raise ValueError(f"grid {grid} does not match {tiles.shape[0]} tiles")
            out = self.model.get_image_features(
                pixel_values=pixel_values,
                pixel_values_local=tiles.to(torch.float32),
                num_local_patches=[tiles.shape[0]],
                patches_grid=[[across, down]],
                return_dict=True,
            )
        (embeddings,) = out.pooler_output  # a list with one [N, n_embed] tensor per image
        return embeddings


class Tf5Text:
    """The v1 DeepSeek-MoE decoder as TF5's ``DeepseekOcr2TextModel``, plus an untied ``lm_head`` Linear.

    Loaded strictly from an official-layout checkpoint: every ``model.embed_tokens`` / ``model.layers.*`` /
    ``model.norm`` / ``lm_head`` tensor is consumed (routed experts fused into ``gate_up_proj`` / ``down_proj``).
    Vision tensors in the same dict are ignored.
    """

    def __init__(self, state_dict: dict[str, torch.Tensor], config: dict, attn_implementation: str = "sdpa"):
        self.config = ModelConfig.from_dict(config)
        self.tf5_config = deepseek_ocr2_text_config(config, attn_implementation)
        self.model = DeepseekOcr2TextModel(self.tf5_config).to(torch.float32).eval().requires_grad_(False)
        d = self.config.decoder
        self.lm_head = nn.Linear(d.hidden_size, d.vocab_size, bias=False).eval().requires_grad_(False)
        converted, used = convert_text_state_dict(state_dict, config)
        lm_names = {n for n in state_dict if n.startswith(("model.embed_tokens.", "model.layers.", "model.norm."))}
        _check_consumed({n: None for n in lm_names}, used, set(), "Tf5Text")
        _load_strict(self.model, {k: v.to(torch.float32) for k, v in converted.items()}, "Tf5Text")
        _load_strict(self.lm_head, {"weight": state_dict["lm_head.weight"].to(torch.float32)}, "Tf5Text lm_head")
        assert self.model.config._experts_implementation == "eager"

    @torch.no_grad()
    def logits(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Full causal forward without a cache: [B,T,H] -> float32 logits [B,T,V]."""
        hidden = self.model(inputs_embeds=inputs_embeds.to(torch.float32), use_cache=False).last_hidden_state
        return self.lm_head(hidden).float()

    @torch.no_grad()
    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed_tokens(token_ids)

    @torch.no_grad()
    def greedy(self, inputs_embeds: torch.Tensor, steps: int) -> list[int]:
        """Greedy decoding with TF5's own ``DynamicCache``: prefill [1,T,H], then ``steps`` argmax tokens (no EOS stop)."""
        if inputs_embeds.shape[0] != 1:
            raise ValueError("greedy() takes a single sequence [1,T,H]")
        cache = DynamicCache(config=self.model.config)
        step_input = inputs_embeds.to(torch.float32)
        tokens: list[int] = []
        for _ in range(steps):
            hidden = self.model(inputs_embeds=step_input, cache=cache, use_cache=True).last_hidden_state
            token = int(self.lm_head(hidden[:, -1]).float().argmax(dim=-1).item())
            tokens.append(token)
            step_input = self.embed(torch.tensor([[token]]))
        return tokens
