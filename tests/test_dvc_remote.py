"""A dataset that code cannot regenerate goes through a DVC S3 remote: ``dvc add``, ``dvc push`` to a real S3
server (SeaweedFS, tests/support/s3.py), then ``dvc pull`` in a fresh ``git clone`` restores the same bytes."""

from __future__ import annotations

import pytest
import yaml

from dsocr.data.dataset import dataset_hash
from tests.support.dvc_repo import dvc_env, git_identity, run
from tests.support.s3 import seaweedfs_s3

pytest.importorskip("dvc", reason="DVC is not installed (the eval extra)")


BUCKET = "dsocr-dvc"
PREFIX = "dvc"
GOLDEN = "data/golden"


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A git repository whose data/golden is ``dvc add``ed and ``dvc push``ed to a bucket on a live S3 server."""
    root = tmp_path_factory.mktemp("dvc-remote")
    with seaweedfs_s3(root / "seaweedfs") as server:
        server.create_bucket(BUCKET)
        env = dvc_env(root / "dvc-site-cache", server.env())
        origin = root / "origin"
        origin.mkdir()
        run(["git", "init", "-q"], origin, env)
        git_identity(origin, env)
        run(["dvc", "init", "-q"], origin, env)
        run(["dsocr", "data", "synth", "--out", GOLDEN, "--pages", "3"], origin, env)
        run(["dvc", "add", GOLDEN], origin, env)
        run(["dvc", "remote", "add", "-d", "store", f"s3://{BUCKET}/{PREFIX}"], origin, env)
        run(["dvc", "remote", "modify", "store", "endpointurl", server.endpoint_url], origin, env)
        run(["git", "add", "-A"], origin, env)
        run(["git", "commit", "-q", "-m", "golden dataset on the S3 remote"], origin, env)
        run(["dvc", "push"], origin, env)
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
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    assert (clone / f"{GOLDEN}.dvc").is_file() and not (clone / GOLDEN).exists()
    assert not (clone / ".dvc" / "cache").exists()  # nothing to copy from but the remote
    run(["dvc", "pull"], clone, env)
    assert dataset_hash(clone / GOLDEN) == dataset_hash(origin / GOLDEN)
    assert sorted(p.relative_to(clone / GOLDEN) for p in (clone / GOLDEN).rglob("*")) == sorted(
        p.relative_to(origin / GOLDEN) for p in (origin / GOLDEN).rglob("*")
    )
