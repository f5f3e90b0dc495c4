"""Triton ``preprocess``: page image bytes, mode and prompt → DeepEncoder's views and the prompt's token ids.

The same ``dsocr.preprocess`` and ``dsocr.prompts`` code as in-process recognition, so served pages get
bit-identical inputs. A request with bad input gets its own INVALID_ARG response; the rest of the batch goes on.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

from dsocr.contract import IMAGE_INPUT, INPUT_IDS, VIEW_TENSORS, resolve_prompt
from dsocr.model.preprocess import prepare_image
from dsocr.model.prompts import build_input_ids
from dsocr.model.source import resolve
from dsocr.model.tokenizer import Tokenizer
from dsocr.triton.backend import model_parameters, use_torch_threads

GLOBAL_VIEW, TILES, GRID = VIEW_TENSORS


class TritonPythonModel:
    def initialize(self, args):
        parameters = model_parameters(args)
        use_torch_threads(parameters)
        self.tokenizer = Tokenizer.from_dir(resolve(parameters["checkpoint"]).path)

    def execute(self, requests):
        return [self._respond(request) for request in requests]

    def _respond(self, request):
        try:
            image = _bytes(request, IMAGE_INPUT)
            if not image:
                raise ValueError("IMAGE is empty")
            ref = _bytes(request, "REF").decode() or None
            prompt = resolve_prompt(_bytes(request, "PROMPT").decode(), ref)
            max_tiles = int(pb_utils.get_input_tensor_by_name(request, "MAX_TILES").as_numpy().reshape(-1)[0])
            prepared = prepare_image(image, _bytes(request, "MODE").decode(), max_tiles=max_tiles)
            input_ids = build_input_ids(self.tokenizer, prompt, prepared.num_placeholders)
        except (ValueError, UnicodeDecodeError) as error:  # ImageTooLargeError and unreadable images included
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
        outputs = {
            GLOBAL_VIEW: prepared.global_view.numpy()[None],
            TILES: prepared.tiles.numpy()[None],
            GRID: np.array([prepared.grid], dtype=np.int32),
            INPUT_IDS: np.array([input_ids], dtype=np.int64),
        }
        return pb_utils.InferenceResponse([pb_utils.Tensor(name, value) for name, value in outputs.items()])


def _bytes(request, name: str) -> bytes:
    """The one element of a ``[1, 1]`` BYTES input."""
    values = pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)
    if len(values) != 1:
        raise ValueError(f"{name} must hold exactly one element, got {len(values)}")
    return bytes(values[0])
