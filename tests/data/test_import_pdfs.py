"""PDF import: each page's text layer is its pseudo ground truth, tagged so; scans and unreadable PDFs are skipped."""

import pikepdf
import pytest

from dsocr.cli import main
from dsocr.data.dataset import Dataset, dataset_hash
from dsocr.data.pdfs import import_pdfs, normalise
from tests.support.documents import LETTER, encrypted_pdf, report_pdf, save, truncated_pdf


def text_pdf(pages: list[list[str]]) -> bytes:
    """Letter pages with each line of ``pages`` drawn in Helvetica, 20 pt apart; a page of no lines has no text."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
    )
    for lines in pages:
        page = pdf.add_blank_page(page_size=LETTER)
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        # A grey box on every page, so the page without text is not empty of content, like a scan.
        content = "0.8 g 72 72 200 200 re f\n"
        content += "".join(f"BT /F1 12 Tf 72 {700 - 20 * row} Td ({line}) Tj ET\n" for row, line in enumerate(lines))
        page.Contents = pdf.make_stream(content.encode("latin-1"))
    return save(pdf)


def quiet(message: str) -> None:
    """A warn callback for the tests that are not about warnings."""


@pytest.fixture
def pdfs(tmp_path):
    """in/: a 3-page PDF whose middle page has no text, and a one-page PDF."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(text_pdf([["Hello world", "Second line"], [], ["Third page"]]))
    (folder / "b.pdf").write_bytes(text_pdf([["Only page"]]))
    return folder


def test_each_page_with_text_is_an_entry_of_its_text_layer(tmp_path, pdfs):
    import_pdfs([pdfs], tmp_path / "out", warn=quiet)
    dataset = Dataset.load(tmp_path / "out")
    assert [(e.source, e.page, e.ground_truth) for e in dataset] == [
        ("pdfs/a.pdf", 1, "Hello world\nSecond line"),
        ("pdfs/a.pdf", 3, "Third page"),
        ("pdfs/b.pdf", 1, "Only page"),
    ]


def test_every_entry_is_tagged_as_pseudo_ground_truth(tmp_path, pdfs):
    import_pdfs([pdfs], tmp_path / "out", warn=quiet)
    assert all(
        entry.tags == {"ground_truth": "text-layer", "source": "pdf"} for entry in Dataset.load(tmp_path / "out")
    )


def test_the_pdfs_are_copied_byte_for_byte_and_their_pages_open(tmp_path, pdfs):
    import_pdfs([pdfs], tmp_path / "out", warn=quiet)
    assert (tmp_path / "out/pdfs/a.pdf").read_bytes() == (pdfs / "a.pdf").read_bytes()
    assert Dataset.load(tmp_path / "out").open_page(1).size == (1224, 1584)  # letter at 144 dpi


def test_a_page_without_text_is_skipped_with_a_warning_and_counted(tmp_path, pdfs, capsys):
    assert main(["data", "import-pdfs", str(pdfs), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert f"dsocr: warning: {pdfs / 'a.pdf'}: page 2 skipped, it has no text layer" in captured.err
    assert "imported 3 page(s) of 2 PDF(s)" in captured.out and "1 page(s) without text" in captured.out


def test_an_unreadable_pdf_is_reported_and_the_others_imported(tmp_path, pdfs, capsys):
    (pdfs / "locked.pdf").write_bytes(encrypted_pdf())
    (pdfs / "broken.pdf").write_bytes(truncated_pdf())
    assert main(["data", "import-pdfs", str(pdfs), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert f"{pdfs / 'locked.pdf'}: skipped, not a readable PDF" in captured.err
    assert f"{pdfs / 'broken.pdf'}: skipped, not a readable PDF" in captured.err
    assert "2 unreadable PDF(s)" in captured.out
    assert sorted(path.name for path in (tmp_path / "out/pdfs").iterdir()) == ["a.pdf", "b.pdf"]


def test_nothing_imported_is_an_error_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "scan.pdf").write_bytes(text_pdf([[], []]))
    (tmp_path / "locked.pdf").write_bytes(encrypted_pdf())
    command = ["data", "import-pdfs", str(tmp_path / "scan.pdf"), str(tmp_path / "locked.pdf")]
    assert main([*command, "--out", str(tmp_path / "out")]) == 2
    assert "dsocr: error: no page was imported" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pdfs_of_the_same_name_get_unique_copies(tmp_path, pdfs):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.pdf").write_bytes(report_pdf())
    import_pdfs([pdfs / "a.pdf", tmp_path / "other" / "a.pdf"], tmp_path / "out", warn=quiet)
    dataset = Dataset.load(tmp_path / "out")
    assert sorted({entry.source for entry in dataset}) == ["pdfs/a-2.pdf", "pdfs/a.pdf"]
    assert dataset[2].ground_truth.startswith("Annual Report 2024\nRevenue grew 12 percent")


def test_importing_twice_gives_the_same_dataset_hash(tmp_path, pdfs, capsys):
    for out in ("x", "y"):
        assert main(["data", "import-pdfs", str(pdfs), "--out", str(tmp_path / out)]) == 0
    assert dataset_hash(tmp_path / "x") == dataset_hash(tmp_path / "y")


def test_a_missing_input_is_an_error(tmp_path, capsys):
    assert main(["data", "import-pdfs", str(tmp_path / "nope.pdf"), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'nope.pdf'}: no such file or folder" in capsys.readouterr().err


def test_the_command_refuses_a_folder_that_is_not_empty_without_force(tmp_path, pdfs, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep")
    assert main(["data", "import-pdfs", str(pdfs), "--out", str(tmp_path / "out")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["data", "import-pdfs", str(pdfs), "--out", str(tmp_path / "out"), "--force"]) == 0


def test_text_is_normalised_to_lf_lines_without_trailing_spaces_or_form_feeds():
    assert normalise("\r\n Title  \r\nbody\ftext \t\r\n\r\n") == " Title\nbodytext"
