"""The held-out figures a run reports every ``--eval-every`` steps: answer loss and greedy-decoded CER."""

from __future__ import annotations

import statistics

import torch

from dsocr.contract import OcrOptions
from dsocr.evaluation.metrics import character_error_rate
from dsocr.model.deepseek_ocr import DeepseekOCR
from dsocr.model.inference import OcrModel
from dsocr.model.tokenizer import Tokenizer
from dsocr.training.batch import answer_loss


def evaluate(model: DeepseekOCR, tokenizer: Tokenizer, pages, config) -> dict:
    """Mean per-token loss and mean CER of the first ``config.eval_pages`` pages, decoded as ``dsocr ocr`` would."""
    indices = range(min(config.eval_pages, len(pages)))
    reader = OcrModel(model, tokenizer)
    loss_sum, tokens, errors = 0.0, 0, []
    was_training = model.training
    model.eval()
    try:
        for index in indices:
            example = pages.example(index)
            with torch.no_grad():
                loss, count = answer_loss(model, tokenizer.image_id, [example])
            loss_sum, tokens = loss_sum + float(loss), tokens + count
            options = OcrOptions(mode=config.mode, prompt=config.prompt, max_new_tokens=2 * example.answer_tokens + 16)
            text = reader.recognize(pages.image(index), options).text
            errors.append(character_error_rate(text, pages.truth(index)))
    finally:
        model.train(was_training)
    return {"loss": loss_sum / tokens, "cer": statistics.fmean(errors), "pages": len(errors)}
