from pathlib import Path

from dsocr.batch import output_stems


def test_output_stems_stay_distinct_when_a_numbered_name_is_already_an_input_stem():
    paths = [Path("a/x.pdf"), Path("b/x.pdf"), Path("c/x-2.pdf"), Path("x.png")]
    stems = output_stems(paths)
    assert stems[:2] == ["x", "x-2"]
    assert len(set(stems)) == len(paths)
