"""Synthetic pages: the same seed gives the same bytes, the ground truth is what was drawn, degradations are tagged."""

import re
import shutil
from collections import Counter
from contextlib import closing
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest

from dsocr.cli import main
from dsocr.data.dataset import Dataset, dataset_hash
from dsocr.data.synth import A4_PX, DEGRADATIONS, installed_families, synthesize


def test_the_same_seed_gives_the_same_dataset(tmp_path):
    assert dataset_hash(synthesize(tmp_path / "a", 4, seed=3)) == dataset_hash(synthesize(tmp_path / "b", 4, seed=3))


def test_another_seed_gives_other_pages(tmp_path):
    assert dataset_hash(synthesize(tmp_path / "a", 4, seed=3)) != dataset_hash(synthesize(tmp_path / "b", 4, seed=4))


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
def test_tesseract_reads_the_ground_truth_off_reader_pages(tmp_path):
    import subprocess

    from dsocr.evaluation.metrics import character_error_rate

    dataset = Dataset.load(synthesize(tmp_path, 4, seed=1))
    for entry in dataset.entries:
        read = subprocess.run(["tesseract", str(tmp_path / entry.source), "-"], capture_output=True, text=True)
        assert character_error_rate(" ".join(read.stdout.split()), " ".join(entry.ground_truth.split())) <= 0.1


def test_reader_pages_are_tiny_mode_sized_with_one_or_two_lines(tmp_path):
    dataset = Dataset.load(synthesize(tmp_path, 6, seed=2))
    assert all(dataset.open_page(i).size == (512, 512) for i in range(len(dataset)))
    assert all(1 <= len(e.ground_truth.splitlines()) <= 2 for e in dataset.entries)


def test_degradations_are_recorded_in_the_tags(tmp_path):
    dataset = Dataset.load(synthesize(tmp_path, 4, seed=2, degrade=1.0))
    assert all(e.tags["degradations"] == "blur,noise,jpeg,rotate,contrast" for e in dataset.entries)


def test_the_command_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--pages", "2"]) == 0
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--pages", "2"]) == 2
    assert "not empty" in capsys.readouterr().err


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("preset", ["reader", "lines", "document", "pdf"])
def test_every_preset_writes_the_same_bytes_for_the_same_seed(tmp_path, preset):
    first = synthesize(tmp_path / "a", 2, seed=9, preset=preset, degrade=0.5)
    second = synthesize(tmp_path / "b", 2, seed=9, preset=preset, degrade=0.5)
    assert _files(first) == _files(second)


def test_pdfs_carry_no_timestamp(tmp_path):
    for pdf in synthesize(tmp_path, 2, seed=0, preset="pdf").glob("images/*.pdf"):
        assert b"/CreationDate" not in pdf.read_bytes() and b"/ModDate" not in pdf.read_bytes()


def test_reader_ink_lies_inside_the_recorded_line_boxes(tmp_path):
    dataset = Dataset.load(synthesize(tmp_path, 6, seed=4))
    for index, entry in enumerate(dataset.entries):
        page = np.asarray(dataset.open_page(index).convert("L"), dtype=np.int16)
        paper = page[0, 0]
        outside = np.ones(page.shape, dtype=bool)
        assert [block.text for block in entry.blocks] == entry.ground_truth.split("\n")
        for block in entry.blocks:
            x0, y0, x1, y1 = (round(v) for v in block.bbox)
            assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
            assert (page[y0:y1, x0:x1] < paper - 100).any(), f"no ink in the box of {block.text!r}"
            outside[y0:y1, x0:x1] = False
        assert (page[outside] == paper).all()


def test_document_ground_truth_is_the_blocks_in_deepseek_markdown(tmp_path):
    dataset = Dataset.load(synthesize(tmp_path, 4, seed=1, preset="document"))
    tables = 0
    for entry in dataset.entries:
        title, *body = entry.blocks
        assert title.category == "title" and {block.category for block in body} <= {"text", "table"}
        assert entry.ground_truth == "\n\n".join([f"# {title.text}", *(block.text for block in body)])
        for table in (block for block in body if block.category == "table"):
            assert re.fullmatch(r"<table>(<tr>(<td>[^<]+</td>)+</tr>)+</table>", table.text)
            tables += 1
    assert tables > 0  # seed 1 draws at least one table in its four pages


def test_pdf_pages_open_at_their_recorded_page_numbers(tmp_path):
    dataset = Dataset.load(synthesize(tmp_path, 5, seed=2, preset="pdf"))
    pages_per_file = Counter(entry.source for entry in dataset.entries)
    for source, count in pages_per_file.items():
        with closing(pdfium.PdfDocument(tmp_path / source)) as pdf:
            assert len(pdf) == count
        assert [e.page for e in dataset.entries if e.source == source] == list(range(1, count + 1))
    assert sum(pages_per_file.values()) == 5 and all(count <= 3 for count in pages_per_file.values())
    assert dataset.open_page(0).size == A4_PX


def test_tags_name_the_font_preset_seed_and_size(tmp_path):
    installed = {family.regular.name for family in installed_families()}
    for entry in Dataset.load(synthesize(tmp_path, 3, seed=6, preset="lines")).entries:
        assert entry.tags["font"] in installed and 24 <= entry.tags["size"] <= 40
        assert (entry.tags["preset"], entry.tags["seed"], entry.tags["degradations"]) == ("lines", 6, "")


def test_degradations_are_drawn_per_page(tmp_path):
    tags = [e.tags["degradations"] for e in Dataset.load(synthesize(tmp_path, 8, seed=3, degrade=0.5)).entries]
    assert len(set(tags)) > 1 and all(set(t.split(",")) <= {"", *DEGRADATIONS} for t in tags)


def test_an_unknown_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'poster'"):
        synthesize(tmp_path, 1, seed=0, preset="poster")


def test_the_command_prints_the_dataset_hash_and_writes_into_a_used_folder_with_force(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["data", "synth", "--out", str(out), "--pages", "2", "--seed", "1", "--preset", "lines"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"dataset hash {dataset_hash(out)}")
    assert main(["data", "synth", "--out", str(out), "--pages", "2", "--seed", "1", "--force"]) == 0
    assert Dataset.load(out).entries[0].tags["preset"] == "reader"


def test_the_refusal_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["data", "synth", "--out", str(tmp_path), "--pages", "1"]) == 2
    assert capsys.readouterr().err == (
        f"dsocr: error: --out {tmp_path} is not empty; choose a new folder or pass --force to write into it\n"
    )
