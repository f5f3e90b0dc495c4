"""A dataset that code cannot regenerate goes through a DVC S3 remote: ``dvc add``, ``dvc push`` to a real S3
server (SeaweedFS, tests/support/s3.py), then ``dvc pull`` in a fresh ``git clone`` restores the same bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dsocr.data.dataset import dataset_hash
from tests.support.s3 import seaweedfs_s3

pytest.importorskip("dvc", reason="DVC is not installed (the eval extra)")

BIN = Path(sys.executable).parent
BUCKET = "dsocr-dvc"
PREFIX = "dvc"
GOLDEN = "data/golden"


def _env(extra: dict[str, str], site_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_SITE_CACHE_DIR"] = str(site_cache)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 180) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _git_identity(repo: Path, env: dict[str, str]) -> None:
    for key, value in (
        ("user.name", "dsocr tests"),
        ("user.email", "tests@dsocr.invalid"),
        ("commit.gpgsign", "false"),
    ):
        _run(["git", "config", key, value], repo, env)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A git repository whose data/golden is ``dvc add``ed and ``dvc push``ed to a bucket on a live S3 server."""
    root = tmp_path_factory.mktemp("dvc-remote")
    with seaweedfs_s3(root / "seaweedfs") as server:
        server.create_bucket(BUCKET)
        env = _env(server.env(), root / "dvc-site-cache")
        origin = root / "origin"
        origin.mkdir()
        _run(["git", "init", "-q"], origin, env)
        _git_identity(origin, env)
        _run(["dvc", "init", "-q"], origin, env)
        _run(["dsocr", "data", "synth", "--out", GOLDEN, "--pages", "3"], origin, env)
        _run(["dvc", "add", GOLDEN], origin, env)
        _run(["dvc", "remote", "add", "-d", "store", f"s3://{BUCKET}/{PREFIX}"], origin, env)
        _run(["dvc", "remote", "modify", "store", "endpointurl", server.endpoint_url], origin, env)
        _run(["git", "add", "-A"], origin, env)
        _run(["git", "commit", "-q", "-m", "golden dataset on the S3 remote"], origin, env)
        _run(["dvc", "push"], origin, env)
        yield server, origin, env


@pytest.mark.slow
def test_dvc_push_writes_the_dataset_objects_into_the_bucket(pushed):
    server, origin, _ = pushed
    out = yaml.safe_load((origin / f"{GOLDEN}.dvc").read_text())["outs"][0]
    assert out["md5"].endswith(".dir")
    keys = set(server.keys(BUCKET, f"{PREFIX}/"))
    # DVC 3's layout: files/md5/<first two hex digits>/<the rest>; the folder's listing is one object, each file one.
    assert f"{PREFIX}/files/md5/{out['md5'][:2]}/{out['md5'][2:]}" in keys
    assert len(keys) == out["nfiles"] + 1


@pytest.mark.slow
def test_dvc_pull_in_a_fresh_clone_restores_identical_bytes(pushed, tmp_path):
    _, origin, env = pushed
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    assert (clone / f"{GOLDEN}.dvc").is_file() and not (clone / GOLDEN).exists()
    assert not (clone / ".dvc" / "cache").exists()  # nothing to copy from but the remote
    _run(["dvc", "pull"], clone, env)
    assert dataset_hash(clone / GOLDEN) == dataset_hash(origin / GOLDEN)
    assert sorted(p.relative_to(clone / GOLDEN) for p in (clone / GOLDEN).rglob("*")) == sorted(
        p.relative_to(origin / GOLDEN) for p in (origin / GOLDEN).rglob("*")
    )
