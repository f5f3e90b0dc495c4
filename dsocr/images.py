"""Image bytes or files in, an upright RGB Pillow image out: the first step of every page, on every path.

Torch-free, because the gRPC client and the HTTP API decode images exactly as the model's preprocessing does
(so a page sent to a server is the very pixels ``OcrModel`` would have read) without carrying the model.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

ImageSource = bytes | str | Path | Image.Image


class ImageTooLargeError(ValueError):
    """An image over Pillow's decompression-bomb limit."""


def load_image(source: ImageSource) -> Image.Image:
    """Decode ``source``, apply its EXIF orientation and convert it to RGB.

    Pillow's decompression-bomb limit stays in force. Undecodable data raise ValueError, oversized data its
    subclass ImageTooLargeError; a missing file raises FileNotFoundError. An ``Image`` that is already RGB
    and upright is returned as it is, not copied.
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        image = _decode(data)
    image = _upright(image)
    # convert() copies even an image that is RGB already; the pixels are only read from here on.
    return image if image.mode == "RGB" else image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation tag says; the image itself when there is nothing to turn.

    exif_transpose returns a copy even when there is no tag, so it only runs when a tag other than 1 is
    present (it ignores invalid values itself). Transposing in place would change a caller's image.
    """
    image.load()  # as exif_transpose does: some formats read their EXIF only with the pixel data
    if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        return image
    return ImageOps.exif_transpose(image)


def _decode(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        # Image.open only reads the header; truncated pixel data shows up when decoding.
        image.load()
    except UnidentifiedImageError as error:
        raise ValueError("data is not an image in a format Pillow can read") from error
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"image is too large: {error}") from error
    except OSError as error:
        # Reading from memory does no file I/O, so an OSError here means corrupt or truncated data.
        raise ValueError(f"image data is corrupt: {error}") from error
    return image
