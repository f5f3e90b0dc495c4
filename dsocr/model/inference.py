"""One page in, text out: preprocessing, DeepEncoder, prompt assembly and greedy decoding together."""

from __future__ import annotations

import torch

from dsocr.contract import OcrOptions, Recognition, resolve_prompt
from dsocr.model.checkpoint import load_model
from dsocr.model.deepseek_ocr import DeepseekOCR
from dsocr.model.generate import greedy_generate
from dsocr.model.ngram import rule_for
from dsocr.model.preprocess import PreparedImage, prepare_image
from dsocr.model.prompts import build_input_ids
from dsocr.model.source import Source, resolve
from dsocr.model.tokenizer import Tokenizer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_dtype(device: str | torch.device) -> torch.dtype:
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


class OcrModel:
    def __init__(self, model: DeepseekOCR, tokenizer: Tokenizer, source: Source | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        parameter = next(model.decoder.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype

    @classmethod
    def load(
        cls, model: str, revision: str | None = None, device: str = "cpu", dtype: torch.dtype | None = None
    ) -> OcrModel:
        source = resolve(model, revision)
        weights = load_model(source, device=device, dtype=dtype or default_dtype(device))
        return cls(weights, Tokenizer.from_dir(source.path), source)

    @torch.inference_mode()
    def image_embeddings(self, image: PreparedImage) -> torch.Tensor:
        """The page's vectors in decoder order: ``[image.num_placeholders, hidden]``."""
        to_model = {"device": self.device, "dtype": self.dtype}
        return self.model.encoder.encode_page(image.global_view.to(**to_model), image.tiles.to(**to_model), image.grid)

    @torch.inference_mode()
    def prompt_embeddings(self, image: PreparedImage, prompt: str) -> torch.Tensor:
        ids = build_input_ids(self.tokenizer, prompt, image.num_placeholders)
        input_ids = torch.tensor(ids, device=self.device)
        return self.model.embed_prompt(input_ids, self.tokenizer.image_id, self.image_embeddings(image))

    def recognize(self, image, options: OcrOptions | None = None) -> Recognition:
        """OCR one page: ``image`` is a Pillow image, encoded bytes or a file path.

        The prompt is a prompt name (``ref`` fills ``locate``) or custom text. The no-repeat rule bans repeating
        any ``ngram_size``-gram within the last ``ngram_window`` generated tokens; size 0 turns it off.
        ``options.retry`` is the document pipeline's, not this method's: one call is one attempt.
        """
        options = options or OcrOptions()
        prepared = prepare_image(image, options.mode, max_tiles=options.max_tiles)
        embeds = self.prompt_embeddings(prepared, resolve_prompt(options.prompt, options.ref))
        rule = rule_for(self.tokenizer, options.ngram_size, options.ngram_window)
        [result] = greedy_generate(
            self.model.decoder, embeds[None], options.max_new_tokens, self.tokenizer.eos_id, rule
        )
        return Recognition(
            text=self.tokenizer.decode(result.token_ids),
            token_ids=result.token_ids,
            finish_reason=result.finish_reason,
            vision_tokens=prepared.num_placeholders,
            prompt_tokens=embeds.shape[0],
            mean_logprob=result.mean_logprob,
        )
