"""The ensemble's tensors: one page and its settings in, a ``Recognition`` out.

Every tensor has the leading batch dimension of 1 that ``max_batch_size: 1`` gives the ensemble.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from tritonclient.grpc import InferInput, InferRequestedOutput, InferResult

from dsocr.contract import IMAGE_INPUT, OUTPUTS, OcrOptions, Recognition, option_inputs
from dsocr.images import load_image

PageSource = Image.Image | bytes | str | Path


def page_bytes(image: PageSource) -> bytes:
    """What goes into IMAGE: encoded bytes and files as they are; a Pillow image as a lossless PNG.

    A Pillow image is first made upright and RGB exactly as the in-process path does (``load_image``), so the
    server decodes the very pixels ``OcrModel.recognize`` would have used: PNG drops the EXIF orientation
    that would otherwise tell the two apart. Compression level 1: the PNG only crosses a network, and level 6
    costs several times the encoding time for a few percent fewer bytes.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, str | Path):
        return Path(image).read_bytes()
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        load_image(image).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
    raise TypeError(f"a page is a Pillow image, encoded image bytes or a file path, not {type(image).__name__}")


def request_inputs(image: bytes, options: OcrOptions) -> list[InferInput]:
    """The page's IMAGE and its options as the ensemble's request tensors (``dsocr.contract.OPTION_INPUTS``)."""
    tensors = []
    for name, value in {IMAGE_INPUT: image, **option_inputs(options)}.items():
        if isinstance(value, int):
            tensors.append(_tensor(name, "INT32", np.array([[value]], dtype=np.int32)))
        else:  # object arrays, not numpy bytes_: bytes_ would strip trailing zero bytes off the image.
            data = value.encode() if isinstance(value, str) else value
            tensors.append(_tensor(name, "BYTES", np.array([[data]], dtype=np.object_)))
    return tensors


def requested_outputs() -> list[InferRequestedOutput]:
    return [InferRequestedOutput(name) for name in OUTPUTS]


def recognition(result: InferResult) -> Recognition:
    def values(name: str) -> np.ndarray:
        array = result.as_numpy(name)
        if array is None:
            raise KeyError(f"the server's response has no {name} output")
        return array.reshape(-1)

    def scalar(name: str):
        return values(name)[0]

    text = scalar("TEXT")
    return Recognition(
        text=text.decode("utf-8") if isinstance(text, bytes) else str(text),
        token_ids=[int(token) for token in values("TOKEN_IDS")],
        finish_reason=scalar("FINISH_REASON").decode(),
        vision_tokens=int(scalar("VISION_TOKENS")),
        prompt_tokens=int(scalar("PROMPT_TOKENS")),
        mean_logprob=float(scalar("MEAN_LOGPROB")),
    )


def _tensor(name: str, datatype: str, value: np.ndarray) -> InferInput:
    tensor = InferInput(name, list(value.shape), datatype)
    tensor.set_data_from_numpy(value)
    return tensor
