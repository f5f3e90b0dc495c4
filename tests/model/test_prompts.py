import pytest

from dsocr.contract import PROMPTS, resolve_prompt
from dsocr.model.prompts import build_input_ids
from dsocr.model.tiny import build_tokenizer
from dsocr.model.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer(build_tokenizer())


# --- resolve_prompt ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text",
    [
        ("markdown", "<image>\n<|grounding|>Convert the document to markdown."),
        ("ocr", "<image>\n<|grounding|>OCR this image."),
        ("free", "<image>\nFree OCR."),
        ("figure", "<image>\nParse the figure."),
        ("describe", "<image>\nDescribe this image in detail."),
    ],
)
def test_named_prompts_give_the_official_text(name, text):
    assert resolve_prompt(name) == text


def test_locate_inserts_the_reference_phrase():
    assert resolve_prompt("locate", ref="the title") == "<image>\nLocate <|ref|>the title<|/ref|> in the image."


def test_locate_without_ref_is_rejected():
    with pytest.raises(ValueError, match="ref"):
        resolve_prompt("locate")


def test_ref_with_another_prompt_is_rejected():
    with pytest.raises(ValueError, match="ref"):
        resolve_prompt("free", ref="x")


def test_custom_text_gets_the_image_prepended_and_is_stripped():
    assert resolve_prompt("  Read the table. \n") == "<image>\nRead the table."


def test_custom_text_that_places_the_image_is_kept():
    assert resolve_prompt("Page:<image>\nTranscribe. ") == "Page:<image>\nTranscribe."


def test_two_images_in_a_prompt_are_rejected():
    with pytest.raises(ValueError, match="exactly one"):
        resolve_prompt("<image><image>\nFree OCR.")


def test_empty_custom_prompt_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        resolve_prompt("   ")


def test_every_named_prompt_holds_one_image():
    assert all(text.count("<image>") == 1 for text in PROMPTS.values())


# --- build_input_ids ---------------------------------------------------------------------------------------


def test_ids_start_with_bos_then_the_placeholders(tokenizer):
    ids = build_input_ids(tokenizer, PROMPTS["markdown"], 273)
    assert ids[0] == tokenizer.bos_id
    assert ids[1:274] == [tokenizer.image_id] * 273
    assert ids.count(tokenizer.image_id) == 273


def test_ids_end_with_the_text_after_the_image(tokenizer):
    ids = build_input_ids(tokenizer, PROMPTS["markdown"], 73)
    assert ids[74:] == tokenizer.encode("\n<|grounding|>Convert the document to markdown.")


def test_ids_have_no_eos(tokenizer):
    assert tokenizer.eos_id not in build_input_ids(tokenizer, PROMPTS["free"], 111)


def test_grounding_tag_is_one_token(tokenizer):
    ids = build_input_ids(tokenizer, PROMPTS["ocr"], 73)
    assert tokenizer.token_id("<|grounding|>") in ids


def test_text_before_the_image_is_encoded_between_bos_and_placeholders(tokenizer):
    prefix = tokenizer.encode("Page:")
    ids = build_input_ids(tokenizer, "Page:<image>\nFree OCR.", 5)
    assert ids == [tokenizer.bos_id] + prefix + [tokenizer.image_id] * 5 + tokenizer.encode("\nFree OCR.")


def test_prompt_without_image_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="exactly one"):
        build_input_ids(tokenizer, "Free OCR.", 73)


def test_zero_placeholders_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="num_placeholders"):
        build_input_ids(tokenizer, PROMPTS["free"], 0)
