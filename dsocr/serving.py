"""What the Python models of ``model_repository/`` share: their settings, read from ``config.pbtxt``."""

from __future__ import annotations

import json

import torch


def model_parameters(args: dict) -> dict[str, str]:
    """The ``parameters`` of the model's config, as Triton hands it to ``initialize``."""
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def use_torch_threads(parameters: dict[str, str]) -> None:
    """Each model is its own process; on a small machine they would otherwise each take every core."""
    threads = int(parameters.get("torch_threads", "0"))
    if threads:
        torch.set_num_threads(threads)


def instance_device(parameters: dict[str, str], args: dict) -> torch.device:
    """``cuda`` means the GPU Triton gave this instance (``instance_group`` with ``KIND_GPU``)."""
    device = parameters["device"]
    if device == "cuda":
        return torch.device("cuda", int(args["model_instance_device_id"]))
    return torch.device(device)
