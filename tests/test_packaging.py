"""The wheel serves: built from the checkout and installed outside it, it builds a model repository from the
templates it carries, and serves it.

The wheel goes into a fresh virtualenv without its dependencies; they come from this environment's site-packages
as a plain path, so this environment's editable dsocr (a finder that a .pth file installs) is not visible there.
"""

import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from dsocr.triton.server import BUNDLED_SERVER
from tests.support.triton_harness import EXIT_TIMEOUT_S, free_ports, set_options

ROOT = Path(__file__).resolve().parents[1]
READY_DEADLINE_S = 300


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a virtualenv outside the checkout with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    build = work / "source"  # a copy, so building leaves nothing (build/, egg-info) in the checkout
    shutil.copytree(
        ROOT, build, ignore=shutil.ignore_patterns(".venv", ".tools", ".git", "__pycache__", "out", "*.egg-info")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work), str(build)],
        check=True,
        capture_output=True,
    )
    [wheel] = work.glob("dsocr-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site] = (venv / "lib").glob("python*/site-packages")
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return venv / "bin"


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    probe = "import dsocr, dsocr.triton.repository as r; print(dsocr.__file__); print(r.TEMPLATE)"
    result = run(installed, "python", "-c", probe, cwd=tmp_path)
    package, templates = result.stdout.split()
    assert not package.startswith(str(ROOT)) and not templates.startswith(str(ROOT)), result.stdout
    assert (Path(templates) / "decode" / "1" / "model.py").is_file()
    assert (Path(package).parent / "schemas" / "document.schema.json").is_file()


def test_the_installed_command_writes_the_tiny_reader_it_carries(installed, tmp_path):
    result = run(installed, "dsocr", "checkpoint", "reader", str(tmp_path / "reader"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "reader" / "lineage.json").is_file() and (tmp_path / "reader" / "tokenizer.json").is_file()
    assert len(list((tmp_path / "reader").glob("model-*.safetensors"))) == 1


def test_the_installed_command_builds_a_repository_from_its_own_templates(
    installed, tiny_checkpoint, tiny_onnx_exports, tmp_path
):
    repository = tmp_path / "repository"
    artifacts = [str(folder) for folder in tiny_onnx_exports]
    result = run(
        installed, "dsocr", "repository", "build", "--model", str(tiny_checkpoint), "--out", str(repository),
        "--artifacts", *artifacts, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {path.name for path in repository.iterdir()} >= {"deepseek_ocr", "preprocess", "encode", "decode"}
    assert (repository / "encoder_512" / "1" / "model.onnx").is_file()


@pytest.mark.triton
def test_the_installed_command_serves_and_a_canary_page_decodes(
    installed, tiny_checkpoint, tiny_onnx_exports, tmp_path
):
    if not BUNDLED_SERVER.is_file():
        pytest.fail("no tritonserver in .tools/: run `make tools`")
    http, grpc, metrics = free_ports(3)
    command = [
        str(installed / "dsocr"), "serve", "--model", str(tiny_checkpoint), "--artifacts",
        *map(str, tiny_onnx_exports), "--repository", str(tmp_path / "repository"),
        "--tritonserver", str(BUNDLED_SERVER), "--http-port", str(http), "--grpc-port", str(grpc),
        "--metrics-port", str(metrics), *set_options(),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        line = process.stdout.readline()  # the ready line, or end of file if serve exits first
        assert line.startswith("dsocr serve: ready"), process.stderr.read()
        assert time.monotonic() < deadline
        health = run(installed, "dsocr", "health", "--server", f"127.0.0.1:{grpc}", "--deadline", "60", cwd=tmp_path)
        assert health.returncode == 0, health.stdout + health.stderr
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=EXIT_TIMEOUT_S + 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
