"""CLIP-L, the second stage of DeepEncoder, fed with SAM's feature map instead of pixel patches.

Parameter names follow the official checkpoint under ``model.vision_model`` (``pre_layrnorm`` sic). The
checkpoint still carries CLIP's own patch convolution; it is loaded so every tensor is accounted for,
and never used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dsocr.model.config import ClipConfig
from dsocr.model.sam import resize_grid

LAYER_NORM_EPS = 1e-5


class Embeddings(nn.Module):
    def __init__(self, config: ClipConfig):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(config.width))
        self.patch_embedding = nn.Conv2d(
            3, config.width, kernel_size=config.patch_size, stride=config.patch_size, bias=False
        )
        self.position_embedding = nn.Embedding(config.num_positions, config.width)

    def positions(self, num_tokens: int) -> torch.Tensor:
        """The learned table (class row + square grid) with its grid resized to the token count."""
        table = self.position_embedding.weight
        side = math.isqrt(table.shape[0] - 1)
        target = math.isqrt(num_tokens)
        grid = table[1:].T.reshape(1, -1, side, side)
        grid = resize_grid(grid, target).reshape(table.shape[1], -1).T
        return torch.cat([table[:1], grid])

    def forward(self, sam_features: torch.Tensor) -> torch.Tensor:
        tokens = sam_features.flatten(2).transpose(1, 2)  # [B, h·w, width], row-major
        cls = self.class_embedding.expand(tokens.shape[0], 1, -1).to(tokens.dtype)
        x = torch.cat([cls, tokens], dim=1)
        return x + self.positions(x.shape[1])


class Attention(nn.Module):
    def __init__(self, config: ClipConfig):
        super().__init__()
        self.heads = config.heads
        self.qkv_proj = nn.Linear(config.width, 3 * config.width)
        self.out_proj = nn.Linear(config.width, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv_proj(x).reshape(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, width))


class MLP(nn.Module):
    def __init__(self, config: ClipConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.width, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        return self.fc2(x * torch.sigmoid(1.702 * x))  # quick GELU


class Layer(nn.Module):
    def __init__(self, config: ClipConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.width, eps=LAYER_NORM_EPS)
        self.self_attn = Attention(config)
        self.layer_norm2 = nn.LayerNorm(config.width, eps=LAYER_NORM_EPS)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Transformer(nn.Module):
    def __init__(self, config: ClipConfig):
        super().__init__()
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ClipVision(nn.Module):
    def __init__(self, config: ClipConfig):
        super().__init__()
        self.embeddings = Embeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.width, eps=LAYER_NORM_EPS)
        self.transformer = Transformer(config)

    def forward(self, sam_features: torch.Tensor) -> torch.Tensor:
        """``[B, C, h, w]`` SAM features → ``[B, 1 + h·w, width]`` (class token first; no final norm)."""
        return self.transformer(self.pre_layrnorm(self.embeddings(sam_features)))
