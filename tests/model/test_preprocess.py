import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from dsocr.contract import MODES, Mode, get_mode
from dsocr.images import load_image
from dsocr.model.preprocess import candidate_grids, choose_tile_grid, placeholder_count, prepare_image

GREY_AFTER_NORMALISATION = (127 / 255 - 0.5) / 0.5


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def noise_image(width: int, height: int) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def pil_to_normalised(image: Image.Image) -> torch.Tensor:
    pixels = torch.tensor(np.array(image), dtype=torch.float32).permute(2, 0, 1)
    return (pixels / 255 - 0.5) / 0.5


# --- modes -------------------------------------------------------------------------------------------------


def test_modes_have_the_official_sizes():
    assert {name: (m.base_size, m.image_size, m.crop) for name, m in MODES.items()} == {
        "tiny": (512, 512, False),
        "small": (640, 640, False),
        "base": (1024, 1024, False),
        "large": (1280, 1280, False),
        "gundam": (1024, 640, True),
    }


def test_unknown_mode_error_lists_the_valid_names():
    with pytest.raises(ValueError, match="tiny, small, base, large, gundam"):
        get_mode("huge")


# --- placeholder counts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected", [("tiny", 73), ("small", 111), ("base", 273), ("large", 421), ("gundam", 273)]
)
def test_untiled_placeholder_count_per_mode(name, expected):
    assert placeholder_count(MODES[name], (1, 1)) == expected


@pytest.mark.parametrize("grid, expected", [((2, 3), 903), ((3, 2), 893), ((2, 2), 693), ((3, 3), 1203)])
def test_gundam_placeholder_count_with_tiles(grid, expected):
    assert placeholder_count(MODES["gundam"], grid) == expected


@pytest.mark.parametrize("across, down", [(1, 2), (2, 1), (4, 1), (1, 6), (4, 2)])
def test_gundam_placeholder_count_follows_the_formula(across, down):
    assert placeholder_count(MODES["gundam"], (across, down)) == 273 + 10 * down * (10 * across + 1)


# --- candidate grids ---------------------------------------------------------------------------------------


def test_candidate_order_for_max_6_matches_the_reference():
    assert candidate_grids(2, 6) == [
        (1, 2),
        (2, 1),
        (3, 1),
        (1, 3),
        (4, 1),
        (1, 4),
        (2, 2),
        (1, 5),
        (5, 1),
        (6, 1),
        (2, 3),
        (1, 6),
        (3, 2),
    ]


def test_candidate_order_for_max_9_matches_the_reference():
    assert candidate_grids(2, 9) == [
        (1, 2),
        (2, 1),
        (3, 1),
        (1, 3),
        (2, 2),
        (4, 1),
        (1, 4),
        (5, 1),
        (1, 5),
        (1, 6),
        (6, 1),
        (3, 2),
        (2, 3),
        (7, 1),
        (1, 7),
        (4, 2),
        (2, 4),
        (1, 8),
        (8, 1),
        (1, 9),
        (3, 3),
        (9, 1),
    ]


def test_candidate_grids_rejects_an_empty_range():
    with pytest.raises(ValueError):
        candidate_grids(2, 1)


# --- tile-grid choice --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "width, height, max_tiles, grid",
    [
        (1224, 1584, 6, (2, 3)),
        (1224, 1584, 9, (2, 3)),
        (1190, 1684, 6, (2, 3)),
        (1190, 1684, 9, (2, 3)),
        (1920, 1080, 6, (2, 1)),
        (1920, 1080, 9, (4, 2)),
        (2000, 2000, 6, (2, 2)),
        (2000, 2000, 9, (3, 3)),
        (800, 600, 6, (3, 2)),
        (800, 600, 9, (3, 2)),
    ],
)
def test_worked_grids_from_the_reference(width, height, max_tiles, grid):
    assert choose_tile_grid(width, height, max_tiles=max_tiles) == grid


@pytest.mark.parametrize(
    "width, height, max_tiles, placeholders",
    [
        (1224, 1584, 6, 903),
        (1920, 1080, 6, 483),
        (1920, 1080, 9, 1093),
        (2000, 2000, 6, 693),
        (2000, 2000, 9, 1203),
        (800, 600, 6, 893),
        (800, 600, 9, 893),
    ],
)
def test_worked_placeholder_counts_from_the_reference(width, height, max_tiles, placeholders):
    grid = choose_tile_grid(width, height, max_tiles=max_tiles)
    assert placeholder_count(MODES["gundam"], grid) == placeholders


@pytest.mark.parametrize("side, grid", [(1357, (2, 2)), (1358, (3, 3))])
def test_square_tie_between_2x2_and_3x3_is_decided_by_area(side, grid):
    # Both grids match a square exactly; 3x3 wins only above half its pixels: 0.5 * 640² * 9 = 1357.6².
    assert choose_tile_grid(side, side, max_tiles=9) == grid


@pytest.mark.parametrize("width, grid", [(1280, (2, 2)), (1281, (3, 3))])
def test_tie_at_exactly_half_the_grid_area_keeps_the_earlier_grid(width, grid):
    # 1280 x 1440 = 0.5 * 640² * 9 exactly; 2x2 and 3x3 are equally far from its aspect ratio.
    assert choose_tile_grid(width, 1440, max_tiles=9) == grid


@pytest.mark.parametrize("width, height, grid", [(1000, 400, (2, 1)), (1240, 496, (3, 1))])
def test_tie_between_different_ratios_is_decided_by_area(width, height, grid):
    # Aspect 2.5 is exactly 0.5 from both 2:1 and 3:1; 3x1 needs more than 0.5 * 640² * 3 pixels.
    assert choose_tile_grid(width, height, max_tiles=6) == grid


@pytest.mark.parametrize("width, height", [(640, 640), (600, 400), (100, 640)])
def test_no_tiles_when_both_sides_fit_one_tile(width, height):
    assert choose_tile_grid(width, height) == (1, 1)


@pytest.mark.parametrize("width, height", [(641, 640), (400, 641)])
def test_tiles_when_one_side_exceeds_one_tile(width, height):
    assert choose_tile_grid(width, height) != (1, 1)


# --- loading -----------------------------------------------------------------------------------------------


def test_load_image_applies_exif_orientation():
    # Left half red, right half blue; orientation 6 means "rotate 90° clockwise to display".
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (32, 0, 64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())

    loaded = load_image(buffer.getvalue())

    assert loaded.size == (32, 64)
    top, bottom = loaded.getpixel((16, 8)), loaded.getpixel((16, 56))
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50


def test_load_image_returns_an_upright_rgb_image_without_copying():
    image = noise_image(8, 8)
    assert load_image(image) is image


def test_load_image_turns_a_copy_of_a_callers_image():
    image = Image.new("RGB", (64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    opened = Image.open(buffer)

    assert load_image(opened).size == (32, 64)
    assert opened.size == (64, 32)


def test_load_image_converts_to_rgb():
    assert load_image(png_bytes(Image.new("L", (8, 8), 200))).mode == "RGB"


def test_load_image_reads_paths_and_path_strings(tmp_path):
    path = tmp_path / "page.png"
    Image.new("RGB", (12, 7), (1, 2, 3)).save(path)
    assert load_image(path).size == (12, 7)
    assert load_image(str(path)).size == (12, 7)


def test_load_image_rejects_non_image_bytes():
    with pytest.raises(ValueError, match="not an image"):
        load_image(b"%PDF-1.7 definitely not pixels")


def test_load_image_rejects_truncated_data():
    data = png_bytes(noise_image(64, 64))
    with pytest.raises(ValueError):
        load_image(data[: len(data) // 2])


def test_load_image_keeps_the_decompression_bomb_guard(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses images over twice this
    with pytest.raises(ValueError, match="too large"):
        load_image(png_bytes(Image.new("RGB", (30, 30))))


# --- prepared tensors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "small", "base", "large", "gundam"])
def test_global_view_is_a_normalised_square_of_the_base_size(name):
    prepared = prepare_image(Image.new("RGB", (300, 200), (10, 20, 30)), name)
    size = MODES[name].base_size
    assert prepared.global_view.shape == (3, size, size)
    assert prepared.global_view.dtype == torch.float32


def test_normalisation_maps_black_to_minus_one_and_white_to_one():
    image = Image.new("RGB", (20, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))
    view = prepare_image(image, "tiny").global_view
    assert view[:, :, :200].eq(1.0).all()
    assert view[:, :, 312:].eq(-1.0).all()


def test_normalisation_is_bit_identical_to_the_reference_for_every_byte():
    # A square of the mode's size is not resampled, so the view holds every byte value as it is.
    pixels = np.tile(np.arange(256, dtype=np.uint8)[:, None], (1, 256 * 3)).reshape(256, 256, 3)
    image = Image.fromarray(pixels, "RGB")
    view = prepare_image(image, Mode("identity", 256, 256, False)).global_view
    assert torch.equal(view, pil_to_normalised(image))


def test_prepared_tensors_are_contiguous():
    prepared = prepare_image(noise_image(800, 600), "gundam")
    assert prepared.global_view.is_contiguous()
    assert prepared.tiles.is_contiguous()


def test_letterbox_bars_are_grey_127_for_a_wide_image():
    # 200x100 → resized to 1024x512 and pasted at y = 256: bars above and below.
    view = prepare_image(Image.new("RGB", (200, 100), (255, 255, 255)), "base").global_view
    expected = torch.full((3, 256, 1024), GREY_AFTER_NORMALISATION)
    torch.testing.assert_close(view[:, :256], expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(view[:, 768:], expected, rtol=0, atol=1e-7)
    assert view[:, 256:768].eq(1.0).all()


def test_letterbox_matches_pillow_pad():
    image = noise_image(90, 150)
    expected = ImageOps.pad(image, (1280, 1280), method=Image.Resampling.BICUBIC, color=(127, 127, 127))
    assert torch.equal(prepare_image(image, "large").global_view, pil_to_normalised(expected))


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_small_modes_stretch_without_bars(name):
    view = prepare_image(Image.new("RGB", (200, 100), (255, 255, 255)), name).global_view
    assert view.eq(1.0).all()


def test_untiled_modes_have_no_tiles():
    prepared = prepare_image(noise_image(2000, 900), "large")
    assert prepared.grid == (1, 1)
    assert prepared.tiles.shape == (0, 3, 1280, 1280)
    assert prepared.num_placeholders == 421


def test_gundam_small_image_is_letterboxed_without_tiles():
    prepared = prepare_image(Image.new("RGB", (600, 400), (255, 255, 255)), "gundam")
    assert prepared.grid == (1, 1)
    assert prepared.tiles.shape == (0, 3, 640, 640)
    assert prepared.num_placeholders == 273
    assert prepared.global_view[:, 0, 0].sub(GREY_AFTER_NORMALISATION).abs().max() < 1e-7


def test_gundam_tiles_are_row_major_crops_of_the_stretched_image():
    image = noise_image(800, 600)
    prepared = prepare_image(image, "gundam")
    assert prepared.grid == (3, 2)
    assert prepared.tiles.shape == (6, 3, 640, 640)
    stretched = image.resize((3 * 640, 2 * 640), Image.Resampling.BICUBIC)
    for k, tile in enumerate(prepared.tiles):
        column, row = k % 3, k // 3
        crop = stretched.crop((640 * column, 640 * row, 640 * (column + 1), 640 * (row + 1)))
        assert torch.equal(tile, pil_to_normalised(crop)), f"tile {k}"


def test_gundam_placeholders_follow_the_chosen_grid():
    prepared = prepare_image(Image.new("RGB", (1920, 1080)), "gundam", max_tiles=9)
    assert prepared.grid == (4, 2)
    assert prepared.num_placeholders == 1093


def test_prepared_image_records_the_original_size():
    prepared = prepare_image(png_bytes(Image.new("RGB", (321, 123))), "base")
    assert prepared.original_size == (321, 123)


def test_prepare_image_accepts_a_mode_object():
    mode = Mode("custom", 256, 256, False)
    assert prepare_image(Image.new("RGB", (10, 10)), mode).global_view.shape == (3, 256, 256)


def test_prepare_image_rejects_max_tiles_below_two():
    with pytest.raises(ValueError, match="max_tiles"):
        prepare_image(Image.new("RGB", (10, 10)), "gundam", max_tiles=1)
