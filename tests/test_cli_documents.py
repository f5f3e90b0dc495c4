"""``dsocr ocr`` over documents: outputs on disk, page selection, input discovery and bad files.

The tiny random checkpoint generates noise that runs into the token limit, so its pages are "incomplete":
that is a result, not a failure. Most tests call ``main`` in-process to load torch once; the bad-file run is
a real subprocess so that a crash or a hang shows as what it is.
"""

import hashlib
import json
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from dsocr.cli import SAMPLE_PAGE, main
from dsocr.documents.output import PAGE_SEPARATOR
from dsocr.documents.record import SCHEMA_PATH
from tests.support.documents import (
    LETTER_PX_AT_144_DPI,
    empty_file,
    encrypted_pdf,
    flate_bomb_pdf,
    html_named_pdf,
    pdf_with_20000_pages,
    png_of_20000_squared,
    png_with_garbage_after_its_signature,
    report_pdf,
    save,
    shaded_pdf,
    truncated_pdf,
    zero_page_pdf,
)

#: The whole bad-file run, model loading included, must finish within this many seconds.
BAD_FILES_DEADLINE_S = 120
#: Inflates to 1 GiB: over the render workers' default 1 GiB address-space allowance.
BOMB_INFLATED_MIB = 1024


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def ocr(checkpoint: Path, *arguments: str) -> int:
    """``dsocr ocr`` in this process, with the tiny model and a 4-token limit."""
    return main(["ocr", *arguments, "--model", str(checkpoint), "--mode", "tiny", "--max-new-tokens", "4"])


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_report_pdf_becomes_markdown_and_schema_valid_json(tiny_checkpoint, tmp_path, validator, capsys):
    report = write(tmp_path / "report.pdf", report_pdf())
    out = tmp_path / "out"
    assert ocr(tiny_checkpoint, str(report), "--out", str(out)) == 0, capsys.readouterr().err

    assert (out / "report.md").read_text(encoding="utf-8").count(PAGE_SEPARATOR.strip()) == 2
    record = load_json(out / "report.json")
    validator.validate(record)
    assert datetime.fromisoformat(record["created"]).utcoffset().total_seconds() == 0
    assert record["document"]["sha256"] == hashlib.sha256(report.read_bytes()).hexdigest()
    assert (record["document"]["type"], record["document"]["page_count"]) == ("pdf", 3)
    assert record["document"]["pages"] == [1, 2, 3]
    pages = record["pages"]
    assert [page["number"] for page in pages] == [1, 2, 3]
    for page in pages:
        assert page["status"] in ("ok", "incomplete") and page["error"] is None
        assert (page["width_px"], page["height_px"]) == LETTER_PX_AT_144_DPI
        assert page["dpi"] == 144
        assert page["size_pt"] == [612, 792]
        assert page["box_pt"] == [0, 0, 612, 792]
        assert page["vision_tokens"] > 0 and page["prompt_tokens"] > 0 and page["generated_tokens"] > 0
    assert record["summary"]["failed"] == 0


def test_page_range_processes_only_the_chosen_pages(tiny_checkpoint, tmp_path):
    report = write(tmp_path / "report.pdf", report_pdf())
    out = tmp_path / "out"
    assert ocr(tiny_checkpoint, str(report), "--pages", "2-3", "--no-retry", "--out", str(out)) == 0

    record = load_json(out / "report.json")
    assert record["document"]["page_count"] == 3
    assert record["document"]["pages"] == [2, 3]
    assert [page["number"] for page in record["pages"]] == [2, 3]
    assert (out / "report.md").read_text(encoding="utf-8").count(PAGE_SEPARATOR.strip()) == 1


def test_one_run_reports_every_bad_file_and_still_writes_the_good_ones(tiny_checkpoint, tmp_path, validator):
    inputs = tmp_path / "inputs"
    bad_files = {
        write(inputs / "empty.pdf", empty_file()): "empty_file",
        write(inputs / "html.pdf", html_named_pdf()): "unsupported_type",
        write(inputs / "truncated.pdf", truncated_pdf()): "corrupt_pdf",
        write(inputs / "encrypted.pdf", encrypted_pdf()): "encrypted_pdf",
        write(inputs / "zero-pages.pdf", zero_page_pdf()): "no_pages",
        write(inputs / "20000-pages.pdf", pdf_with_20000_pages()): "too_many_pages",
        write(inputs / "20000-squared.png", png_of_20000_squared()): "image_too_large",
        write(inputs / "garbage.png", png_with_garbage_after_its_signature()): "corrupt_image",
        inputs / "missing.pdf": "not_found",
    }
    huge_page = write(inputs / "huge-page.pdf", save(shaded_pdf(1, size=(200_000, 100_000))))
    bomb = write(inputs / "bomb.pdf", flate_bomb_pdf(inflated_mib=BOMB_INFLATED_MIB))
    sample = inputs / "sample.png"
    shutil.copyfile(SAMPLE_PAGE, sample)
    report = write(inputs / "report.pdf", report_pdf())
    out = tmp_path / "out"

    arguments = [*map(str, bad_files), str(huge_page), str(bomb), str(sample), str(report)]
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "dsocr.cli", "ocr", *arguments, "--model", str(tiny_checkpoint), "--mode", "tiny"]
        + ["--max-new-tokens", "4", "--no-retry", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=BAD_FILES_DEADLINE_S,
    )
    assert time.monotonic() - started < BAD_FILES_DEADLINE_S

    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    reported = {line.split(": [")[0].strip(): line for line in run.stderr.splitlines() if line.startswith("  ")}
    for path, code in bad_files.items():
        assert f"[{code}]" in reported.get(str(path), ""), f"{path.name}: expected {code} in\n{run.stderr}"
        assert not (out / f"{path.stem}.json").exists()
    assert len(reported) == len(bad_files)

    outputs = {path.stem: load_json(out / f"{path.stem}.json") for path in (huge_page, bomb, sample, report)}
    for record in outputs.values():
        validator.validate(record)
    [capped] = outputs["huge-page"]["pages"]
    assert capped["status"] != "failed"
    assert (capped["width_px"], capped["height_px"]) == (4096, 2048)
    assert capped["dpi"] == pytest.approx(4096 / 200_000 * 72)
    exploded, after = outputs["bomb"]["pages"]
    assert exploded["status"] == "failed" and exploded["error"]["code"] == "render_memory"
    assert after["status"] != "failed" and (after["width_px"], after["height_px"]) == LETTER_PX_AT_144_DPI
    assert outputs["bomb"]["summary"]["failed"] == 1
    assert "page 1 failed (render_memory)" in (out / "bomb.md").read_text(encoding="utf-8")
    assert outputs["sample"]["document"]["type"] == "png"
    assert (outputs["report"]["summary"]["pages"], outputs["report"]["summary"]["failed"]) == (3, 0)
    assert (out / "report.md").is_file()


def test_folder_input_takes_documents_recursively_and_skips_other_files(tiny_checkpoint, tmp_path):
    folder = tmp_path / "folder"
    write(folder / "letter.pdf", save(shaded_pdf(1)))
    write(folder / "deeper" / "down" / "scan.PNG", SAMPLE_PAGE.read_bytes())
    write(folder / "notes.txt", b"not a document")
    write(folder / "report.pdf.bak", report_pdf())
    out = tmp_path / "out"
    assert ocr(tiny_checkpoint, str(folder), "--no-retry", "--out", str(out)) == 0

    assert sorted(path.name for path in out.iterdir()) == ["letter.json", "letter.md", "scan.json", "scan.md"]


def test_glob_pattern_is_expanded_by_dsocr_not_the_shell(tiny_checkpoint, tmp_path):
    write(tmp_path / "docs" / "one.pdf", save(shaded_pdf(1)))
    write(tmp_path / "docs" / "two.pdf", save(shaded_pdf(1)))
    write(tmp_path / "docs" / "three.png", SAMPLE_PAGE.read_bytes())
    out = tmp_path / "out"
    assert ocr(tiny_checkpoint, str(tmp_path / "docs" / "*.pdf"), "--no-retry", "--out", str(out)) == 0

    assert sorted(path.name for path in out.glob("*.json")) == ["one.json", "two.json"]


def test_inputs_with_the_same_stem_get_numbered_outputs(tiny_checkpoint, tmp_path):
    first = write(tmp_path / "a" / "x.pdf", save(shaded_pdf(1)))
    second = write(tmp_path / "b" / "x.pdf", save(shaded_pdf(2)))
    out = tmp_path / "out"
    assert ocr(tiny_checkpoint, str(first), str(second), "--no-retry", "--out", str(out)) == 0

    assert sorted(path.name for path in out.iterdir()) == ["x-2.json", "x-2.md", "x.json", "x.md"]
    assert load_json(out / "x.json")["document"]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert load_json(out / "x-2.json")["document"]["sha256"] == hashlib.sha256(second.read_bytes()).hexdigest()


def test_without_out_the_markdown_goes_to_stdout_and_nothing_is_written(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    document = write(tmp_path / "two-pages.pdf", save(shaded_pdf(2)))
    monkeypatch.chdir(tmp_path)
    assert ocr(tiny_checkpoint, str(document), "--no-retry") == 0

    stdout = capsys.readouterr().out
    assert stdout.count(PAGE_SEPARATOR) == 1
    assert "<!-- dsocr: page 2 stopped at the token limit" in stdout
    assert [path.name for path in tmp_path.iterdir()] == ["two-pages.pdf"]


def test_a_nonexistent_input_alone_exits_2_with_a_clear_message(tiny_checkpoint, tmp_path, capsys):
    missing = tmp_path / "missing.pdf"
    assert ocr(tiny_checkpoint, str(missing), "--out", str(tmp_path / "out")) == 2

    err = capsys.readouterr().err
    assert f"dsocr: {missing}: no such file or folder" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("pages", "complaint"), [("3-1", "reversed"), ("abc", "cannot read")])
def test_a_bad_page_range_is_rejected_by_the_argument_parser(pages, complaint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ocr", str(SAMPLE_PAGE), "--pages", pages])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --pages" in err and complaint in err
