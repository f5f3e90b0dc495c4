import json
import shutil

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models

from dsocr import tokens as tk
from dsocr.model.tokenizer import Tokenizer


def test_special_token_ids_are_read_from_the_tokenizer_not_the_official_numbers(tiny_checkpoint):
    tokenizer = Tokenizer.from_dir(tiny_checkpoint)
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (0, 1, 2)
    assert tokenizer.image_id == tokenizer.token_id("<image>") != 128815


def test_decoding_keeps_table_and_grounding_tokens(tiny_checkpoint):
    tokenizer = Tokenizer.from_dir(tiny_checkpoint)
    text = "<|ref|>table<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n<table><tr><td>a</td></tr></table>"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.token_id("<td>") in tokenizer.encode(text)


def test_encoding_adds_no_bos_or_eos(tiny_checkpoint):
    tokenizer = Tokenizer.from_dir(tiny_checkpoint)
    ids = tokenizer.encode("Free OCR.")
    assert tokenizer.bos_id not in ids and tokenizer.eos_id not in ids


def test_bos_and_eos_are_taken_from_tokenizer_config_in_either_form(tiny_checkpoint, tmp_path):
    shutil.copy(tiny_checkpoint / "tokenizer.json", tmp_path / "tokenizer.json")
    config = {"bos_token": {"__type": "AddedToken", "content": tk.PAD}, "eos_token": tk.BOS}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = Tokenizer.from_dir(tmp_path)
    assert (tokenizer.bos_id, tokenizer.eos_id) == (2, 0)


def test_a_tokenizer_without_the_ocr_special_tokens_is_refused():
    plain = HFTokenizer(models.WordLevel({"a": 0, tk.BOS: 1, tk.EOS: 2}, unk_token="a"))
    with pytest.raises(ValueError, match="lacks the DeepSeek-OCR special tokens"):
        Tokenizer(plain)


def test_a_directory_without_tokenizer_json_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        Tokenizer.from_dir(tmp_path)
