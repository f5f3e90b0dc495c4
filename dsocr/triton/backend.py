"""What the Python models of ``model_repository/`` share: their settings, read from ``config.pbtxt``, and the
names the repository builder and the models must agree on.

torch is imported only by the helpers that need it: the ONNX Runtime encoder model runs without it.
"""

from __future__ import annotations

import json

#: The exported encoder of one view size, in its ``encoder_<size>/1/`` folder (ONNX Runtime on the CPU target).
ONNX_FILE = "model.onnx"


def view_model_name(view: int) -> str:
    """The Triton model that runs the exported encoder of one view size."""
    return f"encoder_{view}"


def model_parameters(args: dict) -> dict[str, str]:
    """The ``parameters`` of the model's config, as Triton hands it to ``initialize``."""
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def use_torch_threads(parameters: dict[str, str]) -> None:
    """Each model is its own process; on a small machine they would otherwise each take every core."""
    import torch

    threads = int(parameters.get("torch_threads", "0"))
    if threads:
        torch.set_num_threads(threads)


def instance_device(parameters: dict[str, str], args: dict):
    """A ``torch.device``: ``cuda`` means the GPU Triton gave this instance (``instance_group`` with ``KIND_GPU``)."""
    import torch

    device = parameters["device"]
    if device == "cuda":
        return torch.device("cuda", int(args["model_instance_device_id"]))
    return torch.device(device)
