"""Triton ``encode``: the vision tokens of a batch of pages, in the order the decoder reads them.

The views of all pages are grouped by size, and each size goes to its exported encoder (``encoder_<size>``: ONNX
Runtime on the CPU, a TensorRT engine on the GPU) as one request, cut to that model's batch limit. This model
then lays each page's vectors out with the checkpoint's ``image_newline`` and ``view_seperator``. Embeddings
leave as float32 whatever the engines compute in.
"""

import numpy as np
import torch
import torch.utils.dlpack
import triton_python_backend_utils as pb_utils

from dsocr.contract import ENCODER_INPUT, ENCODER_OUTPUT, IMAGE_EMBEDS, VIEW_TENSORS
from dsocr.model.checkpoint import read_tensors
from dsocr.model.deepencoder import encode_pages
from dsocr.triton.backend import model_parameters, use_torch_threads, view_model_name

LAYOUT_TENSORS = ("model.image_newline", "model.view_seperator")


class EncoderFailed(Exception):
    pass


class TritonPythonModel:
    def initialize(self, args):
        parameters = model_parameters(args)
        use_torch_threads(parameters)
        self.image_newline, self.view_separator = (
            tensor.float() for tensor in read_tensors(parameters["checkpoint"], list(LAYOUT_TENSORS)).values()
        )
        self.view_dtype = np.dtype(parameters["view_dtype"])
        self.view_batch = int(parameters["view_max_batch_size"])

    @torch.inference_mode()
    def execute(self, requests):
        pages, responses = [], [None] * len(requests)
        for i, request in enumerate(requests):
            global_view, tiles, grid = (
                pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in VIEW_TENSORS
            )
            if len(global_view) != 1:
                responses[i] = _error("encode takes one page per request", pb_utils.TritonError.INVALID_ARG)
                continue
            pages.append((i, (torch.from_numpy(global_view[0]), torch.from_numpy(tiles[0]), tuple(grid[0].tolist()))))
        try:
            vectors = encode_pages(
                [page for _, page in pages], self._encode_views, self.image_newline, self.view_separator
            )
        except EncoderFailed as err:
            for i, _ in pages:
                responses[i] = _error(str(err), pb_utils.TritonError.UNAVAILABLE)
            return responses
        for (i, _), page_vectors in zip(pages, vectors):
            responses[i] = pb_utils.InferenceResponse([pb_utils.Tensor(IMAGE_EMBEDS, page_vectors.numpy()[None])])
        return responses

    def _encode_views(self, views: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` views → ``[B, (S/64)², D]`` from ``encoder_<S>``, in requests of its batch limit."""
        model = view_model_name(views.shape[-1])
        features = []
        for start in range(0, len(views), self.view_batch):
            chunk = views[start : start + self.view_batch].numpy().astype(self.view_dtype, copy=False)
            request = pb_utils.InferenceRequest(
                model_name=model,
                inputs=[pb_utils.Tensor(ENCODER_INPUT, chunk)],
                requested_output_names=[ENCODER_OUTPUT],
            )
            response = request.exec()
            if response.has_error():
                raise EncoderFailed(f"{model}: {response.error().message()}")
            features.append(_as_torch(pb_utils.get_output_tensor_by_name(response, ENCODER_OUTPUT)).float())
        return torch.cat(features)


def _as_torch(tensor) -> torch.Tensor:
    """A BLS output on the CPU; a TensorRT engine's may be in GPU memory, where ``as_numpy`` cannot read it."""
    if tensor.is_cpu():
        return torch.from_numpy(tensor.as_numpy())
    return torch.utils.dlpack.from_dlpack(tensor.to_dlpack()).cpu()


def _error(message, code):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
