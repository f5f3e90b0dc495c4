"""DeepSeek-OCR: DeepEncoder and the MoE decoder, joined where vision vectors replace ``<image>`` embeddings."""

from __future__ import annotations

import torch
from torch import nn

from dsocr.model.config import ModelConfig
from dsocr.model.decoder import Decoder
from dsocr.model.deepencoder import DeepEncoder

PARTS = ("encoder", "decoder")


def official_name(name: str) -> str:
    """This model's parameter name → the official checkpoint's tensor name."""
    part, _, rest = name.partition(".")
    if part not in PARTS:
        raise ValueError(f"not a DeepseekOCR parameter: {name}")
    return rest if rest.startswith("lm_head.") else f"model.{rest}"


class DeepseekOCR(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = DeepEncoder(config)
        self.decoder = Decoder(config.decoder)

    def embed_prompt(self, input_ids: torch.Tensor, image_id: int, image_embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``[T, H]`` of one prompt with its ``<image>`` positions holding ``image_embeds`` in order."""
        embeds = self.decoder.embed_tokens(input_ids)
        is_image = input_ids == image_id
        if int(is_image.sum()) != image_embeds.shape[0]:
            raise ValueError(
                f"prompt has {int(is_image.sum())} image placeholders but the image gives {image_embeds.shape[0]} vectors"
            )
        embeds[is_image] = image_embeds.to(embeds.dtype)
        return embeds
