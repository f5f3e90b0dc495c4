"""docker/triton-entrypoint.sh builds the model repository once per platform and checkpoint, keeps it on the
cache volume, and serves it; run here with a stand-in `dsocr` that records its calls."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT

ENTRYPOINT = ROOT / "docker" / "triton-entrypoint.sh"
FAKE_DSOCR = """#!/bin/sh
echo "$*" >> "$CALLS"
if [ "$1 $2" = "repository build" ]; then
    while [ "$#" -gt 0 ]; do [ "$1" = --out ] && mkdir -p "$2/deepseek_ocr"; shift; done
fi
"""


@pytest.fixture
def start(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dsocr").write_text(FAKE_DSOCR)
    (bin_dir / "dsocr").chmod(0o755)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    calls = tmp_path / "calls"

    def start(*args: str, **env: str) -> list[str]:
        environment = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "CALLS": str(calls),
            "DSOCR_DEVICE": "cpu",
            "DSOCR_MODEL": str(checkpoint),
            "DSOCR_CACHE": str(tmp_path / "cache"),
            **env,
        }
        subprocess.run(["bash", str(ENTRYPOINT), *args], env=environment, check=True, capture_output=True, timeout=60)
        return calls.read_text().splitlines()

    start.checkpoint = checkpoint
    return start


def test_the_first_start_builds_the_repository_and_serves_it(start):
    build, serve = start("--set", "decode.max_running_pages=4")
    assert build.startswith(f"repository build --model {start.checkpoint} --target cpu --out ")
    repository = serve.split("--repository ")[1].split()[0]
    assert Path(repository).is_dir() and "/repositories/cpu-" in repository
    assert "--device cpu --host 0.0.0.0" in serve and serve.endswith("--set decode.max_running_pages=4")


def test_a_second_start_serves_the_cached_repository_without_building(start):
    first = start()
    calls = start()
    assert [call.split()[0:2] for call in calls[len(first) :]] == [["serve", "--repository"]]
    assert calls[-1] == first[-1]


def test_a_changed_checkpoint_gets_a_new_repository(start):
    first = start()
    (start.checkpoint / "model.safetensors").write_bytes(b"new weights")
    calls = start()
    assert calls[len(first)].startswith("repository build")
    assert calls[-1] != first[-1]


def test_prebuilt_artifacts_are_passed_to_the_build(start):
    [build, _] = start(DSOCR_ARTIFACTS="/artifacts/a /artifacts/b")
    assert build.endswith("--artifacts /artifacts/a /artifacts/b")


def test_an_unknown_device_is_refused(start):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        start(DSOCR_DEVICE="tpu")
    assert b"choose cuda or cpu" in failure.value.stderr
