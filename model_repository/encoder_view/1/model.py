"""Triton ``encoder_<view>`` on the CPU: the exported DeepEncoder of one view size, run by ONNX Runtime.

The ONNX file sits beside this one (``dsocr repository build`` puts it there); each request is a batch of views.
"""

from pathlib import Path

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils

from dsocr.contract import ENCODER_INPUT, ENCODER_OUTPUT
from dsocr.triton.backend import ONNX_FILE, model_parameters


class TritonPythonModel:
    def initialize(self, args):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(model_parameters(args)["threads"])
        path = Path(args["model_repository"]) / args["model_version"] / ONNX_FILE
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        """The views of every request in one run (Triton's batcher joined them), split back per request."""
        views = [pb_utils.get_input_tensor_by_name(request, ENCODER_INPUT).as_numpy() for request in requests]
        [features] = self.session.run([ENCODER_OUTPUT], {ENCODER_INPUT: np.concatenate(views)})
        splits = np.cumsum([len(v) for v in views])[:-1]
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor(ENCODER_OUTPUT, part)]) for part in np.split(features, splits)
        ]
