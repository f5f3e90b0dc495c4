"""Pages with their ground truth → one training batch, laid out exactly as inference prompts the model.

The prompt ids come from ``build_input_ids`` and the image vectors from ``DeepEncoder.encode_pages`` (the
newline and separator vectors included), the same code the served path runs; the answer follows the prompt
and ends in EOS, and only the answer's tokens are scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dsocr.model.deepseek_ocr import DeepseekOCR
from dsocr.model.preprocess import PreparedImage
from dsocr.model.prompts import build_input_ids
from dsocr.model.tokenizer import Tokenizer

#: The label of positions that are not scored (the prompt, the image, padding), as PyTorch's cross-entropy skips.
IGNORED = -100


@dataclass(frozen=True)
class Example:
    image: PreparedImage
    input_ids: list[int]  # the prompt's ids (image placeholders included), then the answer's, then EOS
    answer_start: int  # index of the answer's first id in input_ids

    @property
    def answer_tokens(self) -> int:
        return len(self.input_ids) - self.answer_start


def make_example(tokenizer: Tokenizer, image: PreparedImage, prompt: str, answer: str) -> Example:
    prompt_ids = build_input_ids(tokenizer, prompt, image.num_placeholders)
    return Example(image, prompt_ids + tokenizer.encode(answer) + [tokenizer.eos_id], len(prompt_ids))


def answer_loss(model: DeepseekOCR, image_id: int, examples: list[Example]) -> tuple[torch.Tensor, int]:
    """The summed cross-entropy of every answer token given what precedes it, and how many tokens that is.

    Rows are padded on the right, so under the causal mask no scored position ever sees padding.
    """
    parameter = model.decoder.embed_tokens.weight
    to_model = {"device": parameter.device, "dtype": parameter.dtype}
    pages = [(e.image.global_view.to(**to_model), e.image.tiles.to(**to_model), e.image.grid) for e in examples]
    vectors = model.encoder.encode_pages(pages)
    length = max(len(e.input_ids) for e in examples)
    rows, targets = [], torch.full((len(examples), length), IGNORED, dtype=torch.long)
    for row, (example, page_vectors) in enumerate(zip(examples, vectors)):
        ids = torch.tensor(example.input_ids, device=parameter.device)
        embeds = model.embed_prompt(ids, image_id, page_vectors)
        rows.append(F.pad(embeds, (0, 0, 0, length - len(ids))))
        # The logits at position t predict id t + 1: the answer's ids are the targets of the positions before them.
        targets[row, example.answer_start - 1 : len(ids) - 1] = ids[example.answer_start :].cpu()
    positions = torch.arange(length, device=parameter.device).expand(len(examples), -1)
    hidden = model.decoder.hidden_states(torch.stack(rows), positions)
    scored = targets != IGNORED
    logits = model.decoder.lm_head(hidden[scored.to(hidden.device)]).float()
    loss = F.cross_entropy(logits, targets[scored].to(logits.device), reduction="sum")
    return loss, int(scored.sum())
