"""The page contract: how to OCR one page (``OcrOptions``), what comes back (``Recognition``), who does it
(``Recognizer``), and the names the served ensemble gives both.

Every path speaks it: the in-process model, the Triton models, the gRPC client, the HTTP API and the CLI. The
options, their defaults and their validation are declared here once; the CLI's flags (``dsocr.arguments``), the
API's form fields (``dsocr.api.forms``) and the ensemble's request tensors (``option_inputs``) are made from
them. Deliberately light: pydantic and the standard library, no torch, no numpy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dsocr.tokens import IMAGE as IMAGE_PLACEHOLDER


@dataclass(frozen=True)
class Mode:
    name: str
    base_size: int  # side of the global view
    image_size: int  # side of one tile in tiled modes; equal to base_size otherwise
    crop: bool  # whether large images are also cut into tiles


#: The official resolution modes.
MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("tiny", 512, 512, False),
        Mode("small", 640, 640, False),
        Mode("base", 1024, 1024, False),
        Mode("large", 1280, 1280, False),
        Mode("gundam", 1024, 640, True),
    )
}
ModeName = Literal[tuple(MODES)]  # type: ignore[valid-type]
#: The view sizes of the five modes: tiny 512, small 640, base 1024, large 1280, gundam 1024 + 640 tiles.
VIEW_SIZES = tuple(sorted({size for mode in MODES.values() for size in (mode.base_size, mode.image_size)}))

#: Fewest and (by default) most Gundam tiles; DeepSeek's vLLM scripts allow 6, the HF ``infer`` 9.
MIN_TILES = 2
DEFAULT_MAX_TILES = 6

PROMPTS: dict[str, str] = {
    "markdown": "<image>\n<|grounding|>Convert the document to markdown.",
    "ocr": "<image>\n<|grounding|>OCR this image.",
    "free": "<image>\nFree OCR.",
    "figure": "<image>\nParse the figure.",
    "describe": "<image>\nDescribe this image in detail.",
    "locate": "<image>\nLocate <|ref|>{ref}<|/ref|> in the image.",
}

#: The official PDF script's no-repeat setting, stricter than the 30/90 default: a page that ran to the token
#: limit has usually degenerated into a loop, and the second attempt uses it.
RETRY_NGRAM = (20, 50)


def get_mode(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"unknown mode {name!r}; valid modes are {', '.join(MODES)}") from None


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
        if IMAGE_PLACEHOLDER not in prompt:
            prompt = f"{IMAGE_PLACEHOLDER}\n{prompt}"
    image_position(prompt)
    return prompt


def image_position(prompt: str) -> int:
    """Where the one ``<image>`` of ``prompt`` starts; each request carries exactly one image."""
    count = prompt.count(IMAGE_PLACEHOLDER)
    if count != 1:
        raise ValueError(f"a prompt must contain exactly one {IMAGE_PLACEHOLDER}, found {count}")
    return prompt.index(IMAGE_PLACEHOLDER)


class InvalidOptions(ValueError):
    """Options that do not make a valid request; the message names each field and what is wrong with it."""


class OcrOptions(BaseModel):
    """How to OCR a page. Built directly, invalid values raise pydantic's ``ValidationError`` (a ``ValueError``);
    ``OcrOptions.checked`` raises ``InvalidOptions`` with a one-line message for people instead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: ModeName = Field(  # type: ignore[valid-type]
        "gundam", description="resolution mode: tiny 512, small 640, base 1024, large 1280, gundam 640 tiles + 1024"
    )
    prompt: str = Field(
        "markdown", min_length=1, max_length=2000, description=f"one of {', '.join(PROMPTS)}, or custom text"
    )
    ref: str | None = Field(None, max_length=500, description="the text the 'locate' prompt looks for")
    max_new_tokens: int = Field(8192, ge=1, description="most tokens generated per page")
    max_tiles: int = Field(
        DEFAULT_MAX_TILES, ge=MIN_TILES, description="largest Gundam tile count (the HF script uses 9)"
    )
    ngram_size: int = Field(30, ge=0, description="no-repeat n-gram size; 0 turns the rule off")
    ngram_window: int = Field(90, ge=0, description="generated tokens the no-repeat rule looks back over")
    retry: bool = Field(
        True,
        description=f"decode a page that hits max_new_tokens once more with the stricter "
        f"{RETRY_NGRAM[0]}/{RETRY_NGRAM[1]} no-repeat rule",
    )

    @field_validator("ref")
    @classmethod
    def _empty_ref_is_none(cls, ref: str | None) -> str | None:
        return ref or None  # an empty form field or flag is no ref

    @model_validator(mode="after")
    def _consistent(self) -> OcrOptions:
        resolve_prompt(self.prompt, self.ref)
        if self.ngram_size and self.ngram_window < self.ngram_size:
            raise ValueError(f"ngram_window ({self.ngram_window}) must be at least ngram_size ({self.ngram_size})")
        return self

    @classmethod
    def checked(cls, **values: Any) -> OcrOptions:
        try:
            return cls(**values)
        except ValidationError as error:
            raise InvalidOptions("; ".join(_problem(problem) for problem in error.errors())) from None

    @property
    def retry_ngram(self) -> tuple[int, int] | None:
        """The (size, window) of the second attempt, or None when pages are not retried."""
        return RETRY_NGRAM if self.retry else None

    def with_ngram(self, ngram: tuple[int, int]) -> OcrOptions:
        size, window = ngram
        return self.model_copy(update={"ngram_size": size, "ngram_window": window})


def _problem(problem: dict) -> str:
    field = ".".join(str(part) for part in problem["loc"])
    message = problem["msg"].removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


@dataclass(frozen=True)
class Recognition:
    """One page's raw recognition, as the model (in process or served) produced it."""

    text: str  # special tokens kept: tables and grounding tags are special tokens
    token_ids: list[int]
    finish_reason: str  # "eos" or "length"
    vision_tokens: int  # positions the page takes in the decoder input (newlines and separator included)
    prompt_tokens: int
    #: The model's confidence: mean log-probability of the tokens it picked, EOS included. Left out of ``==``:
    #: served and in-process pages agree token for token, this float only to rounding (float32 on the wire).
    mean_logprob: float = dataclasses.field(compare=False)

    @property
    def generated_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def compression_ratio(self) -> float:
        """Text tokens per vision token, the paper's measure of optical compression."""
        return self.generated_tokens / self.vision_tokens


class Recognizer(Protocol):
    """What turns one page image into text: ``OcrModel`` in process, ``OcrClient`` against a server."""

    def recognize(self, image: Any, options: OcrOptions) -> Recognition: ...


# The served ensemble. One page per request; every tensor has the leading batch dimension of 1.
ENSEMBLE = "deepseek_ocr"
IMAGE_INPUT = "IMAGE"  # PNG/JPEG bytes
#: The options that travel with a page, by tensor name: strings as BYTES, integers as INT32. ``retry`` does not
#: travel: the pipeline sends a retried page again with the retry's n-gram rule.
OPTION_INPUTS: dict[str, str] = {
    "MODE": "mode",
    "PROMPT": "prompt",
    "REF": "ref",
    "MAX_TILES": "max_tiles",
    "MAX_NEW_TOKENS": "max_new_tokens",
    "NGRAM_SIZE": "ngram_size",
    "NGRAM_WINDOW": "ngram_window",
}
OUTPUTS = ("TEXT", "TOKEN_IDS", "FINISH_REASON", "VISION_TOKENS", "PROMPT_TOKENS", "MEAN_LOGPROB")
#: Between the ensemble's steps: preprocess → encode → decode.
VIEW_TENSORS = ("GLOBAL_VIEW", "TILES", "GRID")
INPUT_IDS = "INPUT_IDS"
IMAGE_EMBEDS = "IMAGE_EMBEDS"
#: The exported DeepEncoder of one view size (``encoder_<size>``): a batch of views in, their vectors out.
ENCODER_INPUT, ENCODER_OUTPUT = "pixel_values", "features"


def option_inputs(options: OcrOptions) -> dict[str, str | int]:
    """The option tensors of a request, by name; no ref travels as an empty string."""
    values = options.model_dump()
    return {tensor: "" if values[field] is None else values[field] for tensor, field in OPTION_INPUTS.items()}
