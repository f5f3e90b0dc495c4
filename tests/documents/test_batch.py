import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

from dsocr.contract import OcrOptions
from dsocr.documents.batch import ocr_file, output_stems
from dsocr.documents.record import SCHEMA_PATH
from dsocr.documents.rendering import RenderPool
from tests.support.documents import report_pdf
from tests.support.scripted import ScriptedRecognizer


def test_output_stems_stay_distinct_when_a_numbered_name_is_already_an_input_stem():
    paths = [Path("a/x.pdf"), Path("b/x.pdf"), Path("c/x-2.pdf"), Path("x.png")]
    stems = output_stems(paths)
    assert stems[:2] == ["x", "x-2"]
    assert len(set(stems)) == len(paths)


def test_a_figure_found_on_a_rendered_pdf_page_is_cropped_and_located_in_points(tmp_path):
    # Page 3 of the report draws its figure over x 106..506 pt, y 380..680 pt (PDF space, y up).
    figure_bins = "[[173, 141, 826, 520]]"  # the same region in 0..999 bins of the page, origin top-left
    page_text = f"<|ref|>image<|/ref|><|det|>{figure_bins}<|/det|>\n<|ref|>image_caption<|/ref|><|det|>[[173, 530, 700, 560]]<|/det|>\nFigure 1<｜end▁of▁sentence｜>"
    report = tmp_path / "report.pdf"
    report.write_bytes(report_pdf())
    model = {"id": "scripted", "revision": None}
    with RenderPool(workers=1) as pool:
        run = ocr_file(
            ScriptedRecognizer([(page_text, "eos")]),
            model,
            pool,
            report,
            OcrOptions(),
            pages="3",
            dpi=144,
            out=tmp_path / "out",
        )

    markdown_path, json_path = run.written
    assert "![](report_images/3_0.jpg)" in markdown_path.read_text()
    record = json.loads(json_path.read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(record)
    figure = record["pages"][0]["blocks"][0]
    assert figure["image"] == "report_images/3_0.jpg"
    assert figure["bbox"]["pt"] == pytest.approx([106, 380, 506, 680], abs=1.0)
    crop = np.asarray(Image.open(tmp_path / "out" / "report_images" / "3_0.jpg"))
    inner = crop[5:-5, 5:-5]
    assert abs(inner[..., 1].mean() - 96) < 8  # the gradient's constant green, not the white page
    assert inner[:, -1, 0].mean() > 200 and inner[:, 0, 0].mean() < 60  # red rises left to right
