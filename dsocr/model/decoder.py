"""The DeepSeek-3B-MoE language model that turns vision tokens and a prompt into text.

Plain multi-head attention with rotate-half RoPE (not MLA), layer 0 a dense SwiGLU, later layers a
softmax top-k mixture of experts without renormalisation plus one always-on shared expert. Parameter
names follow the official checkpoint (``model.layers.*``, ``model.embed_tokens``, ``model.norm``,
``lm_head``).

Positions are given per row, and the KV cache is written at those positions, so rows of one batch may
sit at different lengths: what a continuous-batching engine needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsocr.model.config import DecoderConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class KVCache:
    """Keys and values of every layer for ``batch`` rows of up to ``max_len`` positions."""

    def __init__(self, config: DecoderConfig, batch: int, max_len: int, device=None, dtype=torch.float32):
        shape = (config.num_hidden_layers, batch, config.num_key_value_heads, max_len, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def rows(self, start: int, stop: int) -> KVCache:
        """Rows ``start:stop`` as a cache of their own that shares this one's memory."""
        view = object.__new__(KVCache)
        view.k, view.v = self.k[:, start:stop], self.v[:, start:stop]
        return view

    def move_row(self, source: int, target: int, length: int) -> None:
        """Copy the first ``length`` positions of row ``source`` into row ``target``."""
        self.k[:, target, :, :length] = self.k[:, source, :, :length]
        self.v[:, target, :, :length] = self.v[:, source, :, :length]

    def update(self, layer: int, positions: torch.Tensor, k: torch.Tensor, v: torch.Tensor, length: int):
        """Write ``k``/``v`` ``[B, heads, T, D]`` at ``positions`` ``[B, T]``; return this layer's first ``length`` keys/values."""
        rows = torch.arange(positions.shape[0], device=positions.device)[:, None]
        self.k[layer, rows, :, positions] = k.transpose(1, 2)
        self.v[layer, rows, :, positions] = v.transpose(1, 2)
        return self.k[layer, :, :, :length], self.v[layer, :, :, :length]


def rotary_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """cos/sin ``[B, T, head_dim]`` of the rotate-half (Llama/NeoX) RoPE over the full head, in fp32."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def causal_mask(positions: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
    """``[B, 1, T, K]``: each query sees the keys at or before its own position in its row.

    Without a cache the keys are the queries themselves; with one, the cache up to the furthest position.
    """
    if cache is None:
        key_positions = positions
    else:
        key_positions = torch.arange(int(positions.max()) + 1, device=positions.device).expand(positions.shape[0], -1)
    return key_positions[:, None, None, :] <= positions[:, None, :, None]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


class Attention(nn.Module):
    def __init__(self, config: DecoderConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.heads = config.num_attention_heads
        self.head_dim = config.head_dim
        width = self.heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.o_proj = nn.Linear(width, config.hidden_size, bias=False)

    def forward(self, x, positions, cos, sin, mask, cache: KVCache | None) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = (
            proj(x).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )  # [B, heads, T, D]
        cos, sin = cos[:, None], sin[:, None]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k, v = cache.update(self.layer, positions, k, v, mask.shape[-1])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))


class SwiGLU(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.normalize = config.norm_topk_prob
        self.scale = config.routed_scaling_factor
        self.gate = nn.Linear(config.hidden_size, config.n_routed_experts, bias=False)
        self.experts = nn.ModuleList(
            SwiGLU(config.hidden_size, config.moe_intermediate_size) for _ in range(config.n_routed_experts)
        )
        self.shared_experts = SwiGLU(config.hidden_size, config.n_shared_experts * config.moe_intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, x.shape[-1])  # [N, H]
        scores = F.linear(tokens.float(), self.gate.weight.float()).softmax(dim=-1)  # [N, E], router in fp32
        weights, experts = scores.topk(self.top_k, dim=-1)  # [N, K]
        if self.normalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights * self.scale

        routed = torch.zeros(tokens.shape, dtype=torch.float32, device=x.device)
        for expert in experts.unique().tolist():
            token_idx, slot = torch.where(experts == expert)
            out = self.experts[expert](tokens[token_idx]).float() * weights[token_idx, slot, None]
            routed.index_add_(0, token_idx, out)
        return routed.to(x.dtype).reshape(x.shape) + self.shared_experts(x)


class DecoderLayer(nn.Module):
    def __init__(self, config: DecoderConfig, layer: int):
        super().__init__()
        self.self_attn = Attention(config, layer)
        dense = layer < config.first_k_dense_replace
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size) if dense else MoE(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, positions, cos, sin, mask, cache):
        x = x + self.self_attn(self.input_layernorm(x), positions, cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        weight = self.embed_tokens.weight
        return KVCache(self.config, batch, max_len, device=weight.device, dtype=weight.dtype)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """``[B, T, H]`` embeddings at ``[B, T]`` positions → float32 logits ``[B, T, V]`` (``[B, 1, V]`` if ``last_only``)."""
        x = self.hidden_states(inputs_embeds, positions, cache)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(x).float()

    def hidden_states(
        self, inputs_embeds: torch.Tensor, positions: torch.Tensor, cache: KVCache | None = None
    ) -> torch.Tensor:
        """The final-normed hidden states ``[B, T, H]``: training takes the LM head of the answer positions only."""
        cos, sin = rotary_cos_sin(positions, self.config.head_dim, self.config.rope_theta, inputs_embeds.dtype)
        mask = causal_mask(positions, cache)
        x = inputs_embeds
        for layer in self.layers:
            x = layer(x, positions, cos, sin, mask, cache)
        return self.norm(x)
