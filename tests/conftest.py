from pathlib import Path

import pytest

from dsocr.inference import OcrModel
from dsocr.tiny import write_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint) -> OcrModel:
    return OcrModel.load(str(tiny_checkpoint))
