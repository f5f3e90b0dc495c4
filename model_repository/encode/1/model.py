"""Triton ``encode``: DeepEncoder over a batch of pages, every view size encoded as one batch.

Embeddings leave as float32 whatever the model's dtype, so the decoder receives exactly what it would get in
process (an upcast of bf16 is exact).
"""

import torch
import triton_python_backend_utils as pb_utils

from dsocr.checkpoint import load_model, resolve
from dsocr.inference import DTYPES
from dsocr.serving import instance_device, model_parameters, use_torch_threads


class TritonPythonModel:
    def initialize(self, args):
        parameters = model_parameters(args)
        use_torch_threads(parameters)
        self.device, self.dtype = instance_device(parameters, args), DTYPES[parameters["dtype"]]
        model = load_model(resolve(parameters["checkpoint"]), self.device, self.dtype, parts=("encoder",))
        self.encoder = model.encoder

    @torch.inference_mode()
    def execute(self, requests):
        pages, responses = [], [None] * len(requests)
        for i, request in enumerate(requests):
            global_view, tiles, grid = (
                pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in ("GLOBAL_VIEW", "TILES", "GRID")
            )
            if len(global_view) != 1:
                error = pb_utils.TritonError("encode takes one page per request", pb_utils.TritonError.INVALID_ARG)
                responses[i] = pb_utils.InferenceResponse(error=error)
                continue
            pages.append((i, (self._tensor(global_view[0]), self._tensor(tiles[0]), tuple(int(v) for v in grid[0]))))
        vectors = self.encoder.encode_pages([page for _, page in pages]) if pages else []
        for (i, _), page_vectors in zip(pages, vectors):
            embeds = pb_utils.Tensor("IMAGE_EMBEDS", page_vectors.float().cpu().numpy()[None])
            responses[i] = pb_utils.InferenceResponse([embeds])
        return responses

    def _tensor(self, array):
        return torch.from_numpy(array).to(self.device, self.dtype)
