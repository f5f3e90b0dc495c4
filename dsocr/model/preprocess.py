"""Image → model inputs, following the official preprocessing for each resolution mode.

Every step mirrors the reference exactly (resampling filter, pad colour, tile-grid tie-breaking), because
the placeholder count in the prompt must equal the number of vision vectors, and because pixel-level
differences change what the model reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from dsocr.contract import DEFAULT_MAX_TILES, MIN_TILES, Mode, get_mode
from dsocr.images import ImageSource, load_image

#: Grey that fills the letterbox bars: int(0.5 * 255) per channel, as the reference pads.
PAD_COLOR = (127, 127, 127)
#: Side of one vision token in input pixels: 16-pixel SAM patches, then two stride-2 convolutions.
PIXELS_PER_TOKEN = 64


def candidate_grids(min_tiles: int = MIN_TILES, max_tiles: int = DEFAULT_MAX_TILES) -> list[tuple[int, int]]:
    """Tile grids (across, down) with ``min_tiles`` ≤ tiles ≤ ``max_tiles``, in the reference's order.

    The reference builds a set and stable-sorts it by tile count, so grids with equal counts keep CPython's
    set iteration order. That order decides exact ties in ``choose_tile_grid``, so the set is built with the
    same comprehension to reproduce it.
    """
    if not 1 <= min_tiles <= max_tiles:
        raise ValueError(f"need 1 <= min_tiles <= max_tiles, got min_tiles={min_tiles}, max_tiles={max_tiles}")
    grids = {
        (i, j)
        for n in range(min_tiles, max_tiles + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_tiles <= i * j <= max_tiles
    }
    return sorted(grids, key=lambda grid: grid[0] * grid[1])


def choose_tile_grid(
    width: int, height: int, max_tiles: int = DEFAULT_MAX_TILES, min_tiles: int = MIN_TILES, tile_size: int = 640
) -> tuple[int, int]:
    """The (tiles across, tiles down) grid whose aspect ratio is closest to the image's.

    Images no larger than one tile on both sides are not tiled: (1, 1). On an exact tie the later, larger
    grid wins only if the image covers more than half of that grid's pixels.
    """
    if width <= tile_size and height <= tile_size:
        return (1, 1)
    aspect = width / height
    area = width * height
    best_grid, best_diff = (1, 1), float("inf")
    for across, down in candidate_grids(min_tiles, max_tiles):
        diff = abs(aspect - across / down)
        if diff < best_diff:
            best_grid, best_diff = (across, down), diff
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * across * down:
            best_grid = (across, down)
    return best_grid


def placeholder_count(mode: Mode, grid: tuple[int, int]) -> int:
    """Number of ``<image>`` placeholders: every token row ends in a newline vector, plus one view separator."""
    side = mode.base_size // PIXELS_PER_TOKEN
    count = side * (side + 1) + 1
    if grid != (1, 1):
        across, down = grid
        tile_side = mode.image_size // PIXELS_PER_TOKEN
        count += (tile_side * down) * (tile_side * across + 1)
    return count


@dataclass
class PreparedImage:
    global_view: torch.Tensor  # [3, base_size, base_size], float32 in [-1, 1]
    tiles: torch.Tensor  # [tiles across * tiles down, 3, image_size, image_size]; no rows when untiled
    grid: tuple[int, int]  # (tiles across, tiles down); (1, 1) when untiled
    mode: Mode
    original_size: tuple[int, int]  # (width, height) after EXIF orientation; output boxes refer to it

    @property
    def num_placeholders(self) -> int:
        return placeholder_count(self.mode, self.grid)


def prepare_image(image: ImageSource, mode: str | Mode, max_tiles: int = DEFAULT_MAX_TILES) -> PreparedImage:
    """The global view, and for tiling modes the tiles, of ``image`` in ``mode``.

    * tiny, small: the image is stretched to a square (aspect ratio not kept).
    * base, large, gundam: the global view is letterboxed with grey bars.
    * gundam: if either side exceeds one tile, the whole image is also stretched onto a grid of tiles
      chosen by ``choose_tile_grid`` and cut row-major.

    ``max_tiles`` defaults to 6, the value in DeepSeek's vLLM scripts and upstream vLLM; the HF ``infer``
    path uses 9. It only matters for tiling modes.
    """
    if max_tiles < MIN_TILES:
        raise ValueError(f"max_tiles must be at least {MIN_TILES}, got {max_tiles}")
    mode = get_mode(mode) if isinstance(mode, str) else mode
    image = load_image(image)
    # The reference hard-codes 640 as both tile side and tiling threshold; gundam's image_size is that 640.
    grid = choose_tile_grid(*image.size, max_tiles=max_tiles, tile_size=mode.image_size) if mode.crop else (1, 1)
    return PreparedImage(
        global_view=_global_view(image, mode),
        tiles=_tiles(image, mode, grid),
        grid=grid,
        mode=mode,
        original_size=image.size,
    )


def _global_view(image: Image.Image, mode: Mode) -> torch.Tensor:
    size = (mode.base_size, mode.base_size)
    # The reference stretches small untiled views instead of letterboxing them.
    if not mode.crop and mode.image_size <= 640:
        view = image.resize(size, Image.Resampling.BICUBIC)
    else:
        view = ImageOps.pad(image, size, method=Image.Resampling.BICUBIC, color=PAD_COLOR)
    # [H, W, 3] → [3, H, W]
    return _normalise(np.asarray(view).transpose(2, 0, 1))


def _tiles(image: Image.Image, mode: Mode, grid: tuple[int, int]) -> torch.Tensor:
    side = mode.image_size
    if grid == (1, 1):
        return torch.empty(0, 3, side, side)
    across, down = grid
    mosaic = np.asarray(image.resize((side * across, side * down), Image.Resampling.BICUBIC))
    # [down·side, across·side, 3] → [down, across, 3, side, side]: row-major tiles, like the reference's crops.
    # Rearranging the uint8 view costs nothing; _normalise reads it in this order once.
    tiles = mosaic.reshape(down, side, across, side, 3).transpose(0, 2, 4, 1, 3)
    return _normalise(tiles).view(down * across, 3, side, side)


def _normalise(pixels: np.ndarray) -> torch.Tensor:
    """uint8 pixels, in any strided layout → a new contiguous float32 tensor of that shape, in [-1, 1].

    The arithmetic and its order are the reference's ToTensor and Normalize(0.5, 0.5): x / 255, − 0.5, / 0.5,
    so the values are bit-identical to it. The rearranging read and the cast to float32 are a single pass
    into the result, and the arithmetic then runs in place: no temporary float tensors.
    """
    normalised = torch.empty(pixels.shape, dtype=torch.float32)
    # Copied through numpy: np.asarray of a PIL image is read-only, which torch.from_numpy warns about.
    np.copyto(normalised.numpy(), pixels)
    return normalised.div_(255).sub_(0.5).div_(0.5)
