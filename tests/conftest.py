"""Session fixtures: the tiny checkpoint, its model and encoder exports, and one Triton server on them.

Every test that starts a Triton server carries the ``triton`` marker, so ``pytest -m "not triton"`` is the fast
loop: tests that use a server fixture get it here, tests that start their own server carry it in their module.
"""

from pathlib import Path

import pytest

from dsocr.model.inference import OcrModel
from dsocr.model.tiny import write_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint) -> OcrModel:
    return OcrModel.load(str(tiny_checkpoint))


@pytest.fixture(scope="session")
def tiny_onnx_exports(tiny_checkpoint, tmp_path_factory) -> list[Path]:
    """The tiny checkpoint's encoder exported to ONNX for every view size (each export passed its parity check)."""
    from dsocr.contract import VIEW_SIZES
    from dsocr.export.onnx import export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    for view in VIEW_SIZES:
        export_onnx(str(tiny_checkpoint), view, folder / str(view))
    return [folder / str(view) for view in VIEW_SIZES]


@pytest.fixture(scope="session")
def triton_server(tiny_checkpoint, tiny_onnx_exports, tmp_path_factory):
    """tritonserver on the tiny checkpoint for the whole session. Missing tools fail the tests (CI must run them)."""
    from dsocr.triton.server import ServerError
    from tests.support.triton_harness import tiny_server

    failure = None
    try:
        with tiny_server(tiny_checkpoint, tiny_onnx_exports, tmp_path_factory.mktemp("triton")) as server:
            yield server
    except ServerError as err:
        failure = str(err)
    if failure:  # failed outside the except block, so the report shows the message alone
        pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory):
    """A real MLflow tracking server (SQLite backend) for the whole session: its URL."""
    from tests.support.mlflow_server import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


#: Fixtures that start a Triton server for the tests that use them.
SERVER_FIXTURES = frozenset({"triton_server", "own_triton"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.triton)
