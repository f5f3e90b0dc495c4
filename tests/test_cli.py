import json
import subprocess
import sys

import pytest
from PIL import Image

from dsocr.cli import SAMPLE_PAGE, main
from dsocr.contract import OcrOptions
from dsocr.documents.postprocess import parse_page
from dsocr.evaluation.metrics import character_error_rate
from dsocr.model.reader import SUMMARY, describe_reader


def _dsocr(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsocr.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_checkpoint_tiny_writes_a_loadable_checkpoint(tmp_path, capsys):
    assert main(["checkpoint", "tiny", str(tmp_path / "tiny"), "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "tiny")
    assert (tmp_path / "tiny" / "config.json").is_file()


def test_ocr_without_out_prints_the_page_markdown_on_stdout(tiny_checkpoint, tiny_model):
    out = _dsocr(
        "ocr",
        str(SAMPLE_PAGE),
        "--model",
        str(tiny_checkpoint),
        "--mode",
        "tiny",
        "--max-new-tokens",
        "12",
        "--no-retry",
    )
    assert out.returncode == 0, out.stderr
    expected = tiny_model.recognize(SAMPLE_PAGE, OcrOptions(mode="tiny", max_new_tokens=12))
    markdown = parse_page(expected.text, Image.open(SAMPLE_PAGE).size).markdown
    assert out.stdout.startswith(markdown) and "stopped at the token limit" in out.stdout
    assert "1 page(s) (0 ok, 1 incomplete, 0 failed), 73 vision tokens, 12 generated" in out.stderr


def test_ocr_of_a_missing_file_is_a_clear_error_without_traceback(tiny_checkpoint, tmp_path, capsys):
    assert main(["ocr", str(tmp_path / "nope.png"), "--model", str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "nope.png: no such file or folder" in err and "Traceback" not in err


def test_ocr_of_bytes_that_are_not_a_document_reports_the_file_and_exits_1(tiny_checkpoint, tmp_path, capsys):
    fake = tmp_path / "page.png"
    fake.write_text("<html>not an image</html>")
    assert main(["ocr", str(fake), "--model", str(tiny_checkpoint)]) == 1
    assert f"{fake}: [unsupported_type] the file is not a PDF, PNG, JPEG or TIFF" in capsys.readouterr().err


def test_ocr_with_an_unusable_model_path_is_a_clear_error(tmp_path, capsys):
    assert main(["ocr", str(SAMPLE_PAGE), "--model", str(tmp_path / "no" / "model")]) == 2
    assert "not a checkpoint directory" in capsys.readouterr().err


def test_an_unknown_mode_is_rejected_by_the_argument_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ocr", str(SAMPLE_PAGE), "--mode", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_demo_falls_back_to_the_tiny_reader_and_says_what_it_is_when_the_hub_is_unreachable(tmp_path):
    env_code = (
        "import os, sys; os.environ['HF_HUB_OFFLINE'] = '1'; os.environ['HF_HUB_CACHE'] = sys.argv[1]; "
        "from dsocr.cli import main; sys.exit(main(['demo', '--work-dir', sys.argv[1]]))"
    )
    out = subprocess.run([sys.executable, "-c", env_code, str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert f"falling back to {tmp_path / 'tiny-reader'}: {describe_reader()}" in out.stderr
    assert (tmp_path / "tiny-reader" / "lineage.json").is_file()
    record = json.loads((tmp_path / "demo" / "demo-page.json").read_text())
    assert record["model"]["lineage"] is not None and record["options"]["prompt"] == "free"
    demo = json.loads(SUMMARY.read_text())["demo_page"]
    assert character_error_rate(out.stdout, demo["ground_truth"]) <= 0.05, out.stdout
