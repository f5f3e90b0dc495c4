"""The official prompts, and the prompt → token-id layout the model was trained on.

There is no chat template: the ids are BOS, the text before ``<image>``, one placeholder id per vision
vector, then the text after ``<image>``. No EOS is appended; generation continues right after the prompt.
"""

from __future__ import annotations

from dsocr.tokenizer import IMAGE, Tokenizer

PROMPTS: dict[str, str] = {
    "markdown": "<image>\n<|grounding|>Convert the document to markdown.",
    "ocr": "<image>\n<|grounding|>OCR this image.",
    "free": "<image>\nFree OCR.",
    "figure": "<image>\nParse the figure.",
    "describe": "<image>\nDescribe this image in detail.",
    "locate": "<image>\nLocate <|ref|>{ref}<|/ref|> in the image.",
}


def resolve_prompt(name_or_text: str, ref: str | None = None) -> str:
    """The prompt text for a name in ``PROMPTS``, or ``name_or_text`` itself as a custom prompt.

    ``ref`` is the phrase to find and is required by, and only accepted for, ``locate``. Custom text is
    stripped, as the HF path does, and gets ``<image>\\n`` in front if it does not place the image itself.
    """
    if name_or_text == "locate":
        if not ref:
            raise ValueError("the 'locate' prompt needs ref, the text to locate")
        prompt = PROMPTS["locate"].format(ref=ref)
    elif ref is not None:
        raise ValueError("ref is only used by the 'locate' prompt")
    elif name_or_text in PROMPTS:
        prompt = PROMPTS[name_or_text]
    else:
        prompt = name_or_text.strip()
        if not prompt:
            raise ValueError("the prompt is empty")
        if IMAGE not in prompt:
            prompt = f"{IMAGE}\n{prompt}"
    _image_position(prompt)
    return prompt


def build_input_ids(tokenizer: Tokenizer, prompt: str, num_placeholders: int) -> list[int]:
    """``[BOS] + enc(text before <image>) + [<image>] * num_placeholders + enc(text after <image>)``."""
    if num_placeholders < 1:
        raise ValueError(f"num_placeholders must be positive, got {num_placeholders}")
    position = _image_position(prompt)
    before, after = prompt[:position], prompt[position + len(IMAGE) :]
    return (
        [tokenizer.bos_id]
        + tokenizer.encode(before)
        + [tokenizer.image_id] * num_placeholders
        + tokenizer.encode(after)
    )


def _image_position(prompt: str) -> int:
    """Where the one ``<image>`` of ``prompt`` starts; each request carries exactly one image."""
    count = prompt.count(IMAGE)
    if count != 1:
        raise ValueError(f"a prompt must contain exactly one {IMAGE}, found {count}")
    return prompt.index(IMAGE)
