"""The registry tests share the session's MLflow server (``mlflow_uri``); each registers under a name of its own."""

import itertools

import pytest

_names = itertools.count()


@pytest.fixture
def model_name(request) -> str:
    return f"{request.node.name[:40]}-{next(_names)}"


@pytest.fixture(autouse=True)
def _own_caches(tmp_path, monkeypatch):
    """Registry downloads go to the test's folder; no test sees another's MLflow settings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
