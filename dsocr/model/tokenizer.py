"""The checkpoint's tokenizer, read from its ``tokenizer.json`` with the ``tokenizers`` library.

Special-token ids are looked up by their text, never hard-coded: the official checkpoint puts ``<image>``
at 128815, the tiny test checkpoints put it elsewhere, and the same code must serve both.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer

from dsocr.tokens import BOS, EOS, IMAGE, PAD, REQUIRED_SPECIAL_TOKENS


class Tokenizer:
    def __init__(self, tokenizer: _HFTokenizer, bos_token: str = BOS, eos_token: str = EOS):
        self._tok = tokenizer
        missing = [t for t in REQUIRED_SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"tokenizer lacks the DeepSeek-OCR special tokens {missing}")
        self.bos_id = tokenizer.token_to_id(bos_token)
        self.eos_id = tokenizer.token_to_id(eos_token)
        self.pad_id = tokenizer.token_to_id(PAD)
        self.image_id = tokenizer.token_to_id(IMAGE)

    @classmethod
    def from_dir(cls, directory: str | Path) -> Tokenizer:
        directory = Path(directory)
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer.json in {directory}")
        bos, eos = BOS, EOS
        config_path = directory / "tokenizer_config.json"
        if config_path.is_file():
            config = json.loads(config_path.read_text(encoding="utf-8"))
            bos = _token_text(config.get("bos_token")) or bos
            eos = _token_text(config.get("eos_token")) or eos
        return cls(_HFTokenizer.from_file(str(path)), bos, eos)

    def token_id(self, token: str) -> int:
        token_id = self._tok.token_to_id(token)
        if token_id is None:
            raise KeyError(f"token {token!r} is not in the vocabulary")
        return token_id

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with no BOS/EOS added (the official ``add_special_tokens=False``)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids`` keeping special tokens: table cells and grounding tags are special tokens."""
        return self._tok.decode(list(ids), skip_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)


def _token_text(value) -> str | None:
    """tokenizer_config.json stores special tokens either as text or as an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value
