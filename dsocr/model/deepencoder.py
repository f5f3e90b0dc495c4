"""DeepEncoder: SAM → CLIP → [CLIP ‖ SAM] → linear projector, and the layout of views in the LM input.

``forward`` turns a batch of same-size views (global views or 640 tiles) into LM-space vectors;
``arrange`` lays one page's vectors out in the order the decoder was trained on: the local tile mosaic
first, then the global view, each grid row followed by ``image_newline``, then one ``view_seperator``
(sic, the checkpoint's spelling).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dsocr.config import ModelConfig
from dsocr.model.clip import ClipVision
from dsocr.model.sam import SamEncoder


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

    def encode_pages(self, pages: list[tuple[torch.Tensor, torch.Tensor, tuple[int, int]]]) -> list[torch.Tensor]:
        """``encode_page`` for many pages at once: all views of one size go through the encoder as one batch."""
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
            encoded = self(torch.cat([views[key] for key in keys])).split([len(views[key]) for key in keys])
            features.update(zip(keys, encoded))
        return [
            self.arrange(features[page, "global"][0], features.get((page, "tiles")), grid)
            for page, (_, _, grid) in enumerate(pages)
        ]

    def arrange(
        self, global_features: torch.Tensor, tile_features: torch.Tensor | None, grid: tuple[int, int]
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
            parts.append(self._with_newlines(mosaic))
        side = math.isqrt(global_features.shape[0])
        parts.append(self._with_newlines(global_features.reshape(side, side, -1)))
        parts.append(self.view_seperator[None].to(global_features.dtype))
        return torch.cat(parts)

    def _with_newlines(self, grid: torch.Tensor) -> torch.Tensor:
        """``[rows, cols, D]`` → ``[rows·(cols+1), D]`` with ``image_newline`` closing every row."""
        newline = self.image_newline.to(grid.dtype).expand(grid.shape[0], 1, -1)
        return torch.cat([grid, newline], dim=1).reshape(-1, grid.shape[-1])
