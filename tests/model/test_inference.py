import pytest
import torch

from dsocr.cli import SAMPLE_PAGE
from dsocr.contract import OcrOptions
from dsocr.model.inference import OcrModel
from dsocr.model.preprocess import prepare_image
from tests.support.parity import relative_error


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs_and_stays_near_fp32(tiny_checkpoint, tiny_model, dtype):
    half = OcrModel.load(str(tiny_checkpoint), dtype=dtype)
    image = prepare_image(SAMPLE_PAGE, "small")
    vectors = half.image_embeddings(image)
    assert vectors.dtype == dtype
    assert relative_error(vectors.float(), tiny_model.image_embeddings(image)) < 3e-2
    result = half.recognize(SAMPLE_PAGE, OcrOptions(mode="small", max_new_tokens=4))
    assert result.generated_tokens + (result.finish_reason == "eos") >= 1


def test_recognition_reports_token_counts_and_compression_ratio(tiny_model):
    result = tiny_model.recognize(SAMPLE_PAGE, OcrOptions(mode="base", max_new_tokens=6))
    assert result.vision_tokens == 273
    assert result.prompt_tokens > result.vision_tokens
    assert result.compression_ratio == result.generated_tokens / 273
    assert result.text == tiny_model.tokenizer.decode(result.token_ids)


def test_recognition_accepts_image_bytes(tiny_model):
    from_file = tiny_model.recognize(SAMPLE_PAGE, OcrOptions(mode="tiny", max_new_tokens=5))
    from_bytes = tiny_model.recognize(SAMPLE_PAGE.read_bytes(), OcrOptions(mode="tiny", max_new_tokens=5))
    assert from_bytes == from_file


def test_the_locate_prompt_needs_its_reference_text(tiny_model):
    with pytest.raises(ValueError, match="needs ref"):
        tiny_model.recognize(SAMPLE_PAGE, OcrOptions(mode="tiny", prompt="locate"))


def test_a_mismatch_between_placeholders_and_vectors_is_refused(tiny_model):
    ids = torch.tensor([tiny_model.tokenizer.bos_id] + [tiny_model.tokenizer.image_id] * 3)
    with pytest.raises(ValueError, match="3 image placeholders but the image gives 2 vectors"):
        tiny_model.model.embed_prompt(ids, tiny_model.tokenizer.image_id, torch.zeros(2, 64))
