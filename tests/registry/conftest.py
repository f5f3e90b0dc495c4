"""One real MLflow server for the registry tests; each test registers models under a name of its own."""

import itertools

import pytest

from tests.support.mlflow_server import mlflow_server

_names = itertools.count()


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture
def model_name(request) -> str:
    return f"{request.node.name[:40]}-{next(_names)}"


@pytest.fixture(autouse=True)
def _own_caches(tmp_path, monkeypatch):
    """Registry downloads go to the test's folder; no test sees another's MLflow settings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
