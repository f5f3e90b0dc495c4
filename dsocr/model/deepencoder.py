"""DeepEncoder: SAM → CLIP → [CLIP ‖ SAM] → linear projector, and the layout of views in the LM input.

``forward`` turns a batch of same-size views (global views or 640 tiles) into LM-space vectors;
``arrange`` lays one page's vectors out in the order the decoder was trained on: the local tile mosaic
first, then the global view, each grid row followed by ``image_newline``, then one ``view_seperator``
(sic, the checkpoint's spelling).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dsocr.model.clip import ClipVision
from dsocr.model.config import ModelConfig
from dsocr.model.sam import SamEncoder, resize_grid, stretch_relative_table


class Projector(nn.Module):
    def __init__(self, input_dim: int, n_embed: int):
        super().__init__()
        self.layers = nn.Linear(input_dim, n_embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DeepEncoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.sam_model = SamEncoder(config.sam)
        self.vision_model = ClipVision(config.clip)
        self.projector = Projector(config.projector_input_dim, config.n_embed)
        self.image_newline = nn.Parameter(torch.zeros(config.n_embed))
        self.view_seperator = nn.Parameter(torch.zeros(config.n_embed))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` views → ``[B, (S/64)², n_embed]`` vectors in row-major grid order."""
        sam = self.sam_model(pixel_values)  # [B, C, S/64, S/64]
        clip = self.vision_model(sam)  # [B, 1 + (S/64)², C]
        features = torch.cat([clip[:, 1:], sam.flatten(2).transpose(1, 2)], dim=-1)  # CLIP first, then SAM
        return self.projector(features)

    def encode_page(self, global_view: torch.Tensor, tiles: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """One page's LM input vectors from its ``[3, S, S]`` global view and ``[n, 3, s, s]`` tiles (n may be 0)."""
        [vectors] = self.encode_pages([(global_view, tiles, grid)])
        return vectors

    def encode_pages(self, pages: list[Page]) -> list[torch.Tensor]:
        """``encode_page`` for many pages at once: all views of one size go through the encoder as one batch."""
        return encode_pages(pages, self, self.image_newline, self.view_seperator)


Page = tuple[torch.Tensor, torch.Tensor, tuple[int, int]]  # global view [3, S, S], tiles [n, 3, s, s], grid


def encode_pages(
    pages: list[Page],
    encode_views: Callable[[torch.Tensor], torch.Tensor],
    image_newline: torch.Tensor,
    view_separator: torch.Tensor,
) -> list[torch.Tensor]:
    """Each page's LM input vectors, with ``encode_views`` (``[B, 3, S, S]`` → ``[B, (S/64)², D]``, a
    ``DeepEncoder`` or an exported engine of one) called once per view size over the views of every page."""
    views = {}  # (page, "global" | "tiles") → [n, 3, S, S]
    for page, (global_view, tiles, _) in enumerate(pages):
        views[page, "global"] = global_view[None]
        if len(tiles):
            views[page, "tiles"] = tiles
    by_size: dict[tuple[int, ...], list] = {}
    for key, batch in views.items():
        by_size.setdefault(tuple(batch.shape[1:]), []).append(key)
    features = {}
    for keys in by_size.values():
        encoded = encode_views(torch.cat([views[key] for key in keys])).split([len(views[key]) for key in keys])
        features.update(zip(keys, encoded))
    return [
        arrange(features[page, "global"][0], features.get((page, "tiles")), grid, image_newline, view_separator)
        for page, (_, _, grid) in enumerate(pages)
    ]


def arrange(
    global_features: torch.Tensor,
    tile_features: torch.Tensor | None,
    grid: tuple[int, int],
    image_newline: torch.Tensor,
    view_separator: torch.Tensor,
) -> torch.Tensor:
    """One page's LM input vectors.

    ``global_features`` is ``[q², D]`` for the global view, ``tile_features`` ``[tw·th, q2², D]`` for
    the tiles in row-major order (or ``None``), ``grid`` is (tiles across, tiles down).
    """
    parts = []
    tiles_across, tiles_down = grid
    if tile_features is not None and len(tile_features):
        side = math.isqrt(tile_features.shape[1])
        mosaic = tile_features.reshape(tiles_down, tiles_across, side, side, -1)
        mosaic = mosaic.permute(0, 2, 1, 3, 4).reshape(tiles_down * side, tiles_across * side, -1)
        parts.append(_with_newlines(mosaic, image_newline))
    side = math.isqrt(global_features.shape[0])
    parts.append(_with_newlines(global_features.reshape(side, side, -1), image_newline))
    parts.append(view_separator[None].to(global_features.dtype))
    return torch.cat(parts)


def _with_newlines(grid: torch.Tensor, image_newline: torch.Tensor) -> torch.Tensor:
    """``[rows, cols, D]`` → ``[rows·(cols+1), D]`` with ``image_newline`` closing every row."""
    newline = image_newline.to(grid.dtype).expand(grid.shape[0], 1, -1)
    return torch.cat([grid, newline], dim=1).reshape(-1, grid.shape[-1])


@torch.no_grad()
def resolve_positions(encoder: DeepEncoder, view: int) -> DeepEncoder:
    """Resize ``encoder``'s position tables for ``view``-pixel views, in place, and return it.

    Its output for that view size stays the same (the same resizing, done once), while an exported graph of it
    holds plain tables instead of bicubic resizes of the trained ones; other view sizes are no longer valid.
    """
    sam = encoder.sam_model
    grid = view // sam.patch_embed.proj.stride[0]
    resized = resize_grid(sam.pos_embed.permute(0, 3, 1, 2), grid).permute(0, 2, 3, 1)
    sam.pos_embed = nn.Parameter(resized, requires_grad=False)
    for block in sam.blocks:
        if not block.window:  # windowed blocks always see window × window grids, their tables' own size
            for name in ("rel_pos_h", "rel_pos_w"):
                table = stretch_relative_table(getattr(block.attn, name), 2 * grid - 1)
                setattr(block.attn, name, nn.Parameter(table, requires_grad=False))
    side = grid // (sam.net_2.stride[0] * sam.net_3.stride[0])  # SAM's two stride-2 convolutions
    embeddings = encoder.vision_model.embeddings
    embeddings.position_embedding = nn.Embedding.from_pretrained(embeddings.positions(1 + side**2))
    return encoder
