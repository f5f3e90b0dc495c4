"""The dataset format: a hand-written manifest loads, a bad line is named by file and line, the hash is content's."""

import shutil

import pytest
from PIL import Image

from dsocr.data.dataset import Block, Dataset, DatasetError, PageEntry, dataset_hash, write_manifest


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


def test_an_absolute_source_is_refused_with_its_line_number(folder):
    _manifest(
        folder, '{"source": "a.png", "ground_truth": "ok"}', f'{{"source": "{folder}/a.png", "ground_truth": ""}}'
    )
    with pytest.raises(DatasetError, match=r"manifest.jsonl:2: .*absolute"):
        Dataset.load(folder)


def test_an_unknown_field_is_refused_rather_than_ignored(folder):
    _manifest(folder, '{"source": "a.png", "groundtruth": "typo"}')
    with pytest.raises(DatasetError, match="manifest.jsonl:1: .*unknown field 'groundtruth'"):
        Dataset.load(folder)


def test_written_entries_load_back_equal(folder):
    entries = [
        PageEntry(source="a.png", ground_truth="hello", tags={"font": "x.ttf", "size": 50, "clean": True}),
        PageEntry(source="b.png", ground_truth="# T", blocks=[Block(category="title", bbox=(1, 2, 30, 20), text="T")]),
    ]
    write_manifest(folder, entries)
    assert Dataset.load(folder).entries == entries


def test_the_hash_ignores_how_the_manifest_is_formatted(folder, tmp_path_factory):
    _manifest(folder, '{ "ground_truth": "hello",  "source": "a.png" }')
    canonical = shutil.copytree(folder, tmp_path_factory.mktemp("canonical") / "copy")
    write_manifest(canonical, [PageEntry(source="a.png", page=1, ground_truth="hello")])
    assert (canonical / "manifest.jsonl").read_text() != (folder / "manifest.jsonl").read_text()
    assert dataset_hash(canonical) == dataset_hash(folder)


def test_a_pdf_page_opens_rendered_at_the_dpi_asked_for(folder):
    pages = [Image.new("RGB", (144, 288), "white"), Image.new("RGB", (288, 144), "white")]
    pages[0].save(folder / "doc.pdf", save_all=True, append_images=pages[1:], resolution=144.0)
    _manifest(folder, '{"source": "doc.pdf", "page": 2, "ground_truth": ""}')
    dataset = Dataset.load(folder)
    assert dataset.open_page(0).size == (288, 144)
    assert dataset.open_page(0, dpi=72).size == (144, 72)


def test_a_page_past_the_end_of_a_pdf_is_reported_when_opened(folder):
    Image.new("RGB", (144, 144), "white").save(folder / "doc.pdf")
    _manifest(folder, '{"source": "a.png", "ground_truth": ""}', '{"source": "doc.pdf", "page": 3, "ground_truth": ""}')
    dataset = Dataset.load(folder)
    with pytest.raises(DatasetError, match=r"manifest.jsonl:2: doc.pdf: page 3 of a PDF with 1 page"):
        dataset.open_page(1)
