"""SAM ViT-B, the first stage of DeepEncoder: windowed local attention at 16-pixel patches.

Parameter names follow the official checkpoint under ``model.sam_model``. Output: a feature map
``[B, downsample_channels[-1], S/64, S/64]`` after the neck and the two stride-2 convolutions that make
the paper's 16x token compressor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsocr.model.config import SamConfig

LAYER_NORM_EPS = 1e-6


def resize_grid(table: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``[1, C, n, n]`` position grid to ``size × size`` the way the official encoder does.

    Bicubic with antialiasing, in float32: antialias changes the cubic kernel (a = -0.5 instead of
    -0.75), so results differ from plain bicubic even when upsampling.
    """
    if table.shape[-1] == size:
        return table
    resized = F.interpolate(table.float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return resized.to(table.dtype)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, width: int):
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.proj(pixels).permute(0, 2, 3, 1)  # [B, H, W, C]


def stretch_relative_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """A ``[n, head_dim]`` relative-position table stretched linearly to ``length`` rows.

    Global blocks are trained at 64 positions per side; other view sizes stretch their tables.
    """
    if table.shape[0] == length:
        return table
    resized = F.interpolate(table.float().T[None], size=length, mode="linear", align_corners=False)
    return resized[0].T.to(table.dtype)


def relative_positions(table: torch.Tensor, size: int) -> torch.Tensor:
    """Rows of a ``[2n-1, head_dim]`` relative-position table for every (query, key) pair: ``[size, size, head_dim]``."""
    table = stretch_relative_table(table, 2 * size - 1)
    coords = torch.arange(size, device=table.device)
    return table[coords[:, None] - coords[None, :] + (size - 1)]


class Attention(nn.Module):
    """Multi-head attention over a 2-D grid with decomposed relative position bias."""

    def __init__(self, width: int, heads: int, grid_size: int):
        super().__init__()
        self.heads = heads
        head_dim = width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid_size - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid_size - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        head_dim = channels // self.heads
        # qkv rows are [q | k | v], each split into heads.
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, HW, head_dim]

        rel_h = relative_positions(self.rel_pos_h, height)  # [H, H, head_dim]
        rel_w = relative_positions(self.rel_pos_w, width)  # [W, W, head_dim]
        grid_q = q.reshape(batch, self.heads, height, width, head_dim)
        bias_h = torch.einsum("bnhwc,hkc->bnhwk", grid_q, rel_h)  # [B, heads, H, W, H']
        bias_w = torch.einsum("bnhwc,wkc->bnhwk", grid_q, rel_w)  # [B, heads, H, W, W']
        bias = (bias_h[..., :, None] + bias_w[..., None, :]).reshape(batch, self.heads, height * width, -1)

        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.transpose(1, 2).reshape(batch, height, width, channels)
        return self.proj(out)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.lin1 = nn.Linear(width, hidden)
        self.lin2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.gelu(self.lin1(x)))


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Cut ``[B, H, W, C]`` into row-major ``window × window`` tiles, zero-padding bottom and right."""
    batch, height, width, channels = x.shape
    pad_h, pad_w = (-height) % window, (-width) % window
    x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    padded_h, padded_w = height + pad_h, width + pad_w
    x = x.view(batch, padded_h // window, window, padded_w // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels), (padded_h, padded_w)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    padded_h, padded_w = padded
    batch = windows.shape[0] // ((padded_h // window) * (padded_w // window))
    x = windows.view(batch, padded_h // window, padded_w // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, padded_h, padded_w, -1)
    return x[:, : size[0], : size[1]]


class Block(nn.Module):
    """Pre-norm transformer block; ``window == 0`` means global attention over the whole grid."""

    def __init__(self, config: SamConfig, window: int):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(config.width, eps=LAYER_NORM_EPS)
        self.attn = Attention(config.width, config.heads, window or config.grid)
        self.norm2 = nn.LayerNorm(config.width, eps=LAYER_NORM_EPS)
        self.mlp = MLP(config.width, config.mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window:
            # The padded positions are attended to (no mask), as in the official encoder.
            size = x.shape[1:3]
            x, padded = window_partition(x, self.window)
            x = window_unpartition(self.attn(x), self.window, padded, size)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + LAYER_NORM_EPS)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class SamEncoder(nn.Module):
    def __init__(self, config: SamConfig):
        super().__init__()
        grid = config.grid
        self.patch_embed = PatchEmbed(config.patch_size, config.width)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, config.width))
        self.blocks = nn.ModuleList(
            Block(config, 0 if i in config.global_attn_indexes else config.window_size) for i in range(config.layers)
        )
        neck = config.neck_channels
        self.neck = nn.Sequential(
            nn.Conv2d(config.width, neck, kernel_size=1, bias=False),
            LayerNorm2d(neck),
            nn.Conv2d(neck, neck, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(neck),
        )
        mid, out = config.downsample_channels
        self.net_2 = nn.Conv2d(neck, mid, kernel_size=3, stride=2, padding=1, bias=False)
        self.net_3 = nn.Conv2d(mid, out, kernel_size=3, stride=2, padding=1, bias=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels)  # [B, S/16, S/16, width]
        pos = resize_grid(self.pos_embed.permute(0, 3, 1, 2), x.shape[1]).permute(0, 2, 3, 1)
        x = x + pos
        for block in self.blocks:
            x = block(x)
        x = self.neck(x.permute(0, 3, 1, 2))
        return self.net_3(self.net_2(x))  # [B, out_channels, S/64, S/64]
