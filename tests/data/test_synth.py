"""Synthetic pages: the same seed gives the same bytes, the ground truth is what was drawn, degradations are tagged."""

import shutil

import pytest

from dsocr.cli import main
from dsocr.data.dataset import Dataset, dataset_hash
from dsocr.data.synth import synthesize


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
