"""A checkpoint ``dsocr train`` wrote with LoRA (adapters merged) serves as it runs in process: the same tokens."""

import io

import pytest

from dsocr.client import OcrClient
from dsocr.contract import OcrOptions
from dsocr.data.dataset import Dataset
from dsocr.data.synth import synthesize
from dsocr.model.inference import OcrModel
from dsocr.training.config import TrainConfig
from dsocr.training.trainer import train
from tests.support.triton_harness import tiny_server

OPTIONS = OcrOptions(mode="tiny", prompt="free", max_new_tokens=16)


@pytest.mark.slow
def test_a_merged_lora_checkpoint_gives_the_same_tokens_served_as_in_process(tiny_checkpoint, tiny_model, tmp_path):
    pages = synthesize(tmp_path / "pages", pages=2, seed=5)
    run = tmp_path / "run"
    # A high learning rate, so that a few steps move the adapters far enough to change what the model writes.
    config = TrainConfig(model=str(tiny_checkpoint), data=str(pages), out=str(run), lora_rank=8, steps=8, lr=0.05)
    train(config, progress=False)
    page = Dataset.load(pages).open_page(0)
    expected = OcrModel.load(str(run)).recognize(page, OPTIONS)
    assert expected.token_ids != tiny_model.recognize(page, OPTIONS).token_ids, "training changed nothing"

    png = io.BytesIO()
    page.save(png, format="PNG")
    with tiny_server(run, [], tmp_path / "triton") as server, OcrClient(server.grpc_url) as client:
        served = client.recognize(png.getvalue(), OPTIONS)
    assert served.token_ids == expected.token_ids
