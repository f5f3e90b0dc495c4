"""The prompt → token-id layout the model was trained on (the prompts themselves are in ``dsocr.contract``).

There is no chat template: the ids are BOS, the text before ``<image>``, one placeholder id per vision
vector, then the text after ``<image>``. No EOS is appended; generation continues right after the prompt.
"""

from __future__ import annotations

from dsocr.contract import image_position
from dsocr.model.tokenizer import Tokenizer
from dsocr.tokens import IMAGE


def build_input_ids(tokenizer: Tokenizer, prompt: str, num_placeholders: int) -> list[int]:
    """``[BOS] + enc(text before <image>) + [<image>] * num_placeholders + enc(text after <image>)``."""
    if num_placeholders < 1:
        raise ValueError(f"num_placeholders must be positive, got {num_placeholders}")
    position = image_position(prompt)
    before, after = prompt[:position], prompt[position + len(IMAGE) :]
    return (
        [tokenizer.bos_id]
        + tokenizer.encode(before)
        + [tokenizer.image_id] * num_placeholders
        + tokenizer.encode(after)
    )
