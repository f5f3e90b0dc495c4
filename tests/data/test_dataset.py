"""The dataset format: a hand-written manifest loads, a bad line is named by file and line, the hash is content's."""

import shutil

import pytest
from PIL import Image

from dsocr.data.dataset import Dataset, DatasetError, dataset_hash


@pytest.fixture
def folder(tmp_path):
    Image.new("RGB", (64, 32), "white").save(tmp_path / "a.png")
    Image.new("RGB", (64, 32), "white").save(tmp_path / "b.png")
    return tmp_path


def _manifest(folder, *lines):
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_a_hand_written_two_line_manifest_loads(folder):
    _manifest(folder, '{"source": "a.png", "ground_truth": "hello"}', '{"source": "b.png", "ground_truth": "x"}')
    dataset = Dataset.load(folder)
    assert [e.ground_truth for e in dataset.entries] == ["hello", "x"]
    assert dataset.open_page(0).size == (64, 32)


@pytest.mark.parametrize(
    "line, problem",
    [
        ("{not json", "manifest.jsonl:2"),
        ('{"source": "a.png"}', "ground_truth"),
        ('{"source": "missing.png", "ground_truth": ""}', "does not exist"),
        ('{"source": "../a.png", "ground_truth": ""}', "inside the dataset folder"),
        ('{"source": "a.png", "ground_truth": "", "page": 0}', "page"),
    ],
)
def test_a_bad_line_is_reported_with_its_line_number(folder, line, problem):
    _manifest(folder, '{"source": "a.png", "ground_truth": "ok"}', line)
    with pytest.raises(DatasetError, match=problem) as error:
        Dataset.load(folder)
    assert "manifest.jsonl:2" in str(error.value)


def test_the_hash_follows_the_content_not_the_folder(folder, tmp_path_factory):
    _manifest(folder, '{"source": "a.png", "ground_truth": "hello"}')
    copy = shutil.copytree(folder, tmp_path_factory.mktemp("elsewhere") / "copy")
    assert dataset_hash(copy) == dataset_hash(folder)
    Image.new("RGB", (64, 32), "black").save(copy / "a.png")
    assert dataset_hash(copy) != dataset_hash(folder)
