"""OmniDocBench import: the ground truth is the counted blocks' Markdown in reading order, and bad files say where."""

import copy
import json

import pytest
from PIL import Image

from dsocr.cli import main
from dsocr.data.dataset import Dataset, dataset_hash
from dsocr.data.omnidocbench import import_omnidocbench


def block(category, box, order, **fields):
    """A layout_dets block in OmniDocBench's format; ``box`` is [x0, y0, x1, y1], written as its 4 corners."""
    x0, y0, x1, y1 = box
    return {
        "category_type": category,
        "poly": [x0, y0, x1, y0, x1, y1, x0, y1],
        "ignore": fields.pop("ignore", False),
        "order": order,
        "anno_id": fields.pop("anno_id", 0),
        "attribute": {},
        "line_with_spans": [],
        "merge_list": [],
        **fields,
    }


TABLE_HTML = "<table><tr><td>a</td><td>1</td></tr></table>"
#: One academic page with every kind of block the import must tell apart, in shuffled list order.
PAGE = {
    "layout_dets": [
        block("text_block", (100, 900, 700, 950), None, text="Unordered, lower."),
        block("header", (100, 20, 700, 50), 0, text="Journal of Tests, vol. 1"),
        block("title", (100, 80, 700, 120), 1, text="A Study\nof  Things"),
        block("text_block", (100, 140, 700, 300), 2, text="First paragraph, with $x^2$ inline."),
        block("equation_isolated", (200, 310, 600, 360), 3, latex="$$\nE = m c^{2}\n$$"),
        block("table", (100, 380, 700, 500), 4, html=TABLE_HTML, latex="\\begin{tabular}{cc}a & 1\\end{tabular}"),
        block("text_block", (100, 510, 700, 540), 5, text="Struck-out text.", ignore=True),
        block("figure", (150, 550, 650, 750), 6),
        block("figure_caption", (150, 760, 650, 790), 7, text="Figure 1: A figure."),
        block("page_number", (390, 1000, 410, 1020), 8, text="7"),
        block("page_footnote", (100, 960, 700, 990), 9, text="1. A footnote of the page."),
        block("abandon", (720, 100, 790, 400), None, text="arXiv:2401.00001"),
        block("text_block", (100, 800, 700, 850), None, text="Unordered, upper."),
    ],
    "page_info": {
        "page_no": 0,
        "height": 1100,
        "width": 800,
        "image_path": "paper_page_1.png",
        "page_attribute": {
            "data_source": "academic_literature",
            "language": "english",
            "layout": "single_column",
            "watermark": False,
            "fuzzy_scan": False,
            "colorful_backgroud": False,
            "special_issue": ["two_columns"],
        },
    },
    "extra": {"relation": []},
}
GROUND_TRUTH = (
    "# A Study of Things\n\n"
    "First paragraph, with $x^2$ inline.\n\n"
    "\\[ E = m c^{2} \\]\n\n" + TABLE_HTML + "\n\n"
    "Figure 1: A figure.\n\n"
    "Unordered, upper.\n\n"
    "Unordered, lower."
)


def write_benchmark(folder, pages=(PAGE,)):
    """OmniDocBench.json and an images/ folder with a small image for every page."""
    images = folder / "images"
    images.mkdir(parents=True)
    for number, page in enumerate(pages):
        Image.new("RGB", (80, 110), (250, 250, 250 - number)).save(images / page["page_info"]["image_path"])
    annotations = folder / "OmniDocBench.json"
    annotations.write_text(json.dumps(list(pages)), encoding="utf-8")
    return annotations, images


def import_one(tmp_path, page=PAGE):
    annotations, images = write_benchmark(tmp_path / "bench", [page])
    import_omnidocbench(annotations, images, tmp_path / "out")
    return Dataset.load(tmp_path / "out")


def test_the_ground_truth_is_the_counted_blocks_in_reading_order(tmp_path):
    assert import_one(tmp_path)[0].ground_truth == GROUND_TRUTH


def test_kept_blocks_carry_their_category_the_poly_bounding_box_and_their_text(tmp_path):
    blocks = [(b.category, b.bbox, b.text) for b in import_one(tmp_path)[0].blocks]
    assert blocks == [
        ("title", (100, 80, 700, 120), "A Study\nof  Things"),
        ("text_block", (100, 140, 700, 300), "First paragraph, with $x^2$ inline."),
        ("equation_isolated", (200, 310, 600, 360), "E = m c^{2}"),
        ("table", (100, 380, 700, 500), TABLE_HTML),
        ("figure", (150, 550, 650, 750), ""),
        ("figure_caption", (150, 760, 650, 790), "Figure 1: A figure."),
        ("text_block", (100, 800, 700, 850), "Unordered, upper."),
        ("text_block", (100, 900, 700, 950), "Unordered, lower."),
    ]


def test_a_tilted_poly_gives_the_box_around_its_corners(tmp_path):
    page = copy.deepcopy(PAGE)
    page["layout_dets"] = [block("text_block", (0, 0, 0, 0), 0, text="tilted")]
    page["layout_dets"][0]["poly"] = [110, 50, 300, 60, 290, 120, 100, 110]
    assert import_one(tmp_path, page)[0].blocks[0].bbox == (100, 50, 300, 120)


def test_a_table_without_html_gives_its_latex(tmp_path):
    page = copy.deepcopy(PAGE)
    page["layout_dets"] = [block("table", (0, 0, 10, 10), 0, html="", latex="\\begin{tabular}{c}x\\end{tabular}")]
    assert import_one(tmp_path, page)[0].ground_truth == "\\begin{tabular}{c}x\\end{tabular}"


def test_flat_page_attributes_become_tags_with_the_source(tmp_path):
    assert import_one(tmp_path)[0].tags == {
        "data_source": "academic_literature",
        "language": "english",
        "layout": "single_column",
        "watermark": False,
        "fuzzy_scan": False,
        "colorful_backgroud": False,
        "source": "omnidocbench",
    }


def test_each_page_is_its_image_copied_byte_for_byte(tmp_path):
    dataset = import_one(tmp_path)
    assert (dataset[0].source, dataset[0].page) == ("images/paper_page_1.png", 1)
    assert dataset.source_path(dataset[0]).read_bytes() == (tmp_path / "bench/images/paper_page_1.png").read_bytes()
    assert dataset.open_page(0).size == (80, 110)


def test_importing_twice_gives_the_same_dataset_hash(tmp_path):
    second = dict(PAGE, page_info=dict(PAGE["page_info"], image_path="paper_page_2.png"))
    annotations, images = write_benchmark(tmp_path / "bench", [PAGE, second])
    for out in ("a", "b"):
        assert main(["data", "import-omnidocbench", str(annotations), str(images), "--out", str(tmp_path / out)]) == 0
    assert len(Dataset.load(tmp_path / "a")) == 2
    assert dataset_hash(tmp_path / "a") == dataset_hash(tmp_path / "b")


def test_a_missing_image_names_the_file_and_the_page_index(tmp_path, capsys):
    second = dict(PAGE, page_info=dict(PAGE["page_info"], image_path="paper_page_2.png"))
    annotations, images = write_benchmark(tmp_path / "bench", [PAGE, second])
    (images / "paper_page_2.png").unlink()
    assert main(["data", "import-omnidocbench", str(annotations), str(images), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dsocr: error: ") and f"{annotations}: page index 1" in error
    assert "'paper_page_2.png' not found" in error
    assert not (tmp_path / "out").exists()  # every page is checked before anything is written


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"layout_dets": []', "not valid JSON"),
        ('{"layout_dets": []}', "expected a JSON list of pages, got dict"),
        ('[{"layout_dets": [], "page_info": {"page_no": 0}}]', "page index 0: no page_info.image_path"),
    ],
    ids=["malformed", "not-a-list", "no-image-path"],
)
def test_a_malformed_file_is_refused_with_its_name(tmp_path, capsys, content, message):
    (tmp_path / "bench.json").write_text(content)
    (tmp_path / "images").mkdir()
    command = ["data", "import-omnidocbench", str(tmp_path / "bench.json"), str(tmp_path / "images")]
    assert main([*command, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'bench.json'}: " in error and message in error


def test_two_pages_with_the_same_image_name_are_refused(tmp_path):
    annotations, images = write_benchmark(tmp_path / "bench")
    annotations.write_text(json.dumps([PAGE, PAGE]))
    with pytest.raises(ValueError, match="page index 1: a second page with the image 'paper_page_1.png'"):
        import_omnidocbench(annotations, images, tmp_path / "out")


def test_an_unknown_category_is_an_error_rather_than_a_guess(tmp_path):
    page = copy.deepcopy(PAGE)
    page["layout_dets"].append(block("sidebar", (0, 0, 10, 10), 20, text="?"))
    with pytest.raises(ValueError, match="page index 0, block 13: unknown category_type 'sidebar'"):
        import_one(tmp_path, page)


def test_the_command_refuses_a_folder_that_is_not_empty_without_force(tmp_path, capsys):
    annotations, images = write_benchmark(tmp_path / "bench")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep")
    command = ["data", "import-omnidocbench", str(annotations), str(images), "--out", str(tmp_path / "out")]
    assert main(command) == 2
    assert "not empty" in capsys.readouterr().err
    assert main([*command, "--force"]) == 0
    assert len(Dataset.load(tmp_path / "out")) == 1 and (tmp_path / "out" / "notes.txt").read_text() == "keep"
