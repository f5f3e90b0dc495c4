import pytest

from dsocr.documents.postprocess import Block, parse_page, to_pixels
from dsocr.tokens import DET_CLOSE, DET_OPEN, EOS, REF_CLOSE, REF_OPEN

LETTER_AT_144_DPI = (1224, 1584)

TABLE_HTML = (
    '<table><tr><td rowspan="2">Region</td><td colspan="2">Revenue</td></tr><tr><td>H1</td><td>H2</td></tr>'
    "<tr><td>North</td><td>1,204</td><td>1,391</td></tr><tr><td>South</td><td>987</td><td>1,045</td></tr></table>"
)
EQUATION = "\\[\ng_t = \\frac{R_t - R_{t-1}}{R_{t-1}}\n\\]"

PAGE = (
    "<|ref|>title<|/ref|><|det|>[[77, 62, 920, 98]]<|/det|>\n"
    "# Quarterly Results of the Northwind Cooperative\n\n"
    "<|ref|>text<|/ref|><|det|>[[77, 112, 920, 190]]<|/det|>\n"
    "Revenue rose in every region. Table 1 compares the two half-years and Figure 1 shows the monthly trend.\n\n"
    "<|ref|>sub_title<|/ref|><|det|>[[77, 205, 420, 228]]<|/det|>\n"
    "## 1. Growth rate\n\n"
    "<|ref|>text<|/ref|><|det|>[[77, 236, 920, 262]]<|/det|>\n"
    "We define the growth rate of period $t$ as\n\n"
    "<|ref|>equation<|/ref|><|det|>[[320, 270, 680, 312]]<|/det|>\n"
    f"{EQUATION}\n\n"
    "<|ref|>table<|/ref|><|det|>[[77, 340, 920, 560]]<|/det|>\n"
    "<|ref|>table_caption<|/ref|><|det|>[[77, 322, 600, 338]]<|/det|>\n"
    "<center>Table 1: Revenue by region (k€)</center>\n"
    f"{TABLE_HTML}\n\n"
    "<|ref|>image<|/ref|><|det|>[[150, 590, 850, 880]]<|/det|>\n"
    "<|ref|>image_caption<|/ref|><|det|>[[300, 888, 700, 910]]<|/det|>\n"
    "<center>Figure 1: Monthly revenue, all regions</center>\n\n"
    "<|ref|>text<|/ref|><|det|>[[77, 930, 920, 962]]<|/det|>\n"
    "All figures are unaudited."
    f"{EOS}"
)

PAGE_MARKDOWN = (
    "# Quarterly Results of the Northwind Cooperative\n\n"
    "Revenue rose in every region. Table 1 compares the two half-years and Figure 1 shows the monthly trend.\n\n"
    "## 1. Growth rate\n\n"
    "We define the growth rate of period $t$ as\n\n"
    f"{EQUATION}\n\n"
    "<center>Table 1: Revenue by region (k€)</center>\n"
    f"{TABLE_HTML}\n\n"
    "![](images/0.jpg)\n\n"
    "<center>Figure 1: Monthly revenue, all regions</center>\n\n"
    "All figures are unaudited."
)


def parse(raw: str, **kwargs):
    return parse_page(raw, LETTER_AT_144_DPI, **kwargs)


def grounded(label: str, payload: str = "[[100, 100, 900, 200]]") -> str:
    return f"<|ref|>{label}<|/ref|><|det|>{payload}<|/det|>"


def assert_no_tags(markdown: str) -> None:
    for tag in (REF_OPEN, REF_CLOSE, DET_OPEN, DET_CLOSE):
        assert tag not in markdown


# --- well-formed pages -------------------------------------------------------------------------------------


def test_full_page_becomes_clean_markdown():
    assert parse(PAGE).markdown == PAGE_MARKDOWN


def test_well_formed_page_is_not_flagged():
    page = parse(PAGE)
    assert not page.malformed
    assert page.problems == []


def test_every_tag_becomes_a_block_in_order():
    labels = [block.label for block in parse(PAGE).blocks]
    assert labels == [
        "title",
        "text",
        "sub_title",
        "text",
        "equation",
        "table",
        "table_caption",
        "image",
        "image_caption",
        "text",
    ]


def test_content_after_a_tag_is_the_block_text():
    title = parse(PAGE).blocks[0]
    assert title == Block(
        label="title",
        boxes=[(77, 62, 920, 98)],
        boxes_px=[to_pixels((77, 62, 920, 98), *LETTER_AT_144_DPI)],
        text="# Quarterly Results of the Northwind Cooperative",
    )


def test_table_html_with_colspan_and_rowspan_is_kept_verbatim():
    assert TABLE_HTML in parse(PAGE).markdown


def test_equation_is_kept_as_emitted():
    equation = parse(PAGE).blocks[4]
    assert equation.text == EQUATION


def test_stacked_image_and_caption_tags_are_separate_blocks():
    raw = f"{grounded('image')}\n{grounded('image_caption')}\n<center>Figure 2: Map</center>"
    image, caption = parse(raw).blocks
    assert (image.label, image.text) == ("image", "")
    assert (caption.label, caption.text) == ("image_caption", "<center>Figure 2: Map</center>")


def test_stacked_table_and_caption_give_the_content_to_the_last_tag():
    raw = f"{grounded('table')}\n{grounded('table_caption')}\nTable 2: Costs\n{TABLE_HTML}"
    table, caption = parse(raw).blocks
    assert table.text == ""
    assert caption.text == f"Table 2: Costs\n{TABLE_HTML}"


def test_one_det_may_hold_several_boxes():
    raw = f"{grounded('text', '[[10, 20, 490, 60], [510, 20, 990, 60]]')}\nTwo columns of one paragraph."
    [block] = parse(raw).blocks
    assert block.boxes == [(10, 20, 490, 60), (510, 20, 990, 60)]
    assert len(block.boxes_px) == 2


def test_text_before_the_first_tag_is_kept_outside_the_blocks():
    page = parse(f"Running header\n\n{grounded('text')}\nBody.")
    assert page.markdown == "Running header\n\nBody."
    assert [block.text for block in page.blocks] == ["Body."]


# --- coordinates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "box, pixels",
    [
        ((0, 0, 999, 999), (0, 0, 1224, 1584)),
        # 500/999 * 1224 = 612.61, 500/999 * 1584 = 792.79: truncated, as the official int() does.
        ((500, 500, 500, 500), (612, 792, 612, 792)),
        # 250/999 * 1224 = 306.31, 750/999 * 1584 = 1189.19.
        ((250, 750, 250, 750), (306, 1189, 306, 1189)),
    ],
)
def test_boxes_map_to_pixels_of_the_original_image(box, pixels):
    payload = "[[" + ", ".join(map(str, box)) + "]]"
    [block] = parse(grounded("text", payload)).blocks
    assert block.boxes == [box]
    assert block.boxes_px == [pixels]


def test_coordinates_are_clamped_to_the_bins():
    [block] = parse(grounded("text", "[[-5, 0, 1200, 999]]")).blocks
    assert block.boxes == [(0, 0, 999, 999)]
    assert block.boxes_px == [(0, 0, 1224, 1584)]


# --- images ------------------------------------------------------------------------------------------------


def test_image_links_are_numbered_in_order():
    raw = "\n\n".join([grounded("image"), grounded("text") + "\nBetween.", grounded("image"), grounded("image")])
    page = parse(raw)
    assert page.markdown == "![](images/0.jpg)\n\nBetween.\n\n![](images/1.jpg)\n\n![](images/2.jpg)"
    assert [block.image_index for block in page.blocks] == [0, None, 1, 2]


def test_image_link_names_come_from_the_caller():
    page = parse(grounded("image"), image_link=lambda k: f"images/3_{k}.jpg")
    assert page.markdown == "![](images/3_0.jpg)"


def test_image_without_readable_box_gets_no_link():
    raw = f"{grounded('image', '[[oops]]')}\n\n{grounded('image')}"
    page = parse(raw)
    assert page.markdown == "![](images/0.jpg)"
    assert [block.image_index for block in page.blocks] == [None, 0]


# --- text clean-up -----------------------------------------------------------------------------------------


def test_colon_macros_are_replaced_like_the_official_script():
    page = parse(f"{grounded('equation')}\n\\[ x \\coloneqq 1, \\quad 2 \\eqqcolon y \\]")
    assert page.markdown == "\\[ x := 1, \\quad 2 =: y \\]"


def test_runs_of_three_or_more_newlines_collapse_to_one_blank_line():
    raw = f"{grounded('text')}\nFirst.\n\n\n\n\n{grounded('text')}\nSecond.\n\n\nThird."
    assert parse(raw).markdown == "First.\n\nSecond.\n\nThird."


def test_trailing_eos_is_stripped():
    assert parse(f"{grounded('text')}\nDone.{EOS}\n").markdown == "Done."


def test_free_ocr_text_passes_through_without_blocks():
    raw = "Northwind Cooperative\nQuarterly Results\n\nRevenue rose in every region.\n" + EOS
    page = parse(raw)
    assert page.markdown == "Northwind Cooperative\nQuarterly Results\n\nRevenue rose in every region."
    assert page.blocks == []
    assert not page.malformed


# --- malformed and truncated output ------------------------------------------------------------------------


def test_text_cut_inside_a_box_list_is_flagged_and_kept():
    page = parse(f"{grounded('text')}\nKept paragraph.\n\n<|ref|>table<|/ref|><|det|>[[12, 3")
    assert page.malformed
    assert "unclosed <|det|>" in page.problems[0]
    assert page.markdown == "Kept paragraph."
    assert [(block.label, block.boxes) for block in page.blocks] == [("text", [(100, 100, 900, 200)]), ("table", [])]


def test_text_cut_inside_a_label_is_flagged_and_kept():
    page = parse(f"{grounded('text')}\nKept paragraph.\n\n<|ref|>tit")
    assert page.malformed
    assert "unclosed <|ref|>" in page.problems[0]
    assert page.markdown == "Kept paragraph."
    assert [block.label for block in page.blocks] == ["text"]


def test_unclosed_label_mid_page_keeps_the_following_content():
    page = parse(f"<|ref|>text\nOrphan paragraph.\n\n{grounded('text')}\nNext.")
    assert page.malformed
    assert page.markdown == "Orphan paragraph.\n\nNext."
    assert [block.text for block in page.blocks] == ["Next."]


def test_label_without_box_list_still_opens_a_block():
    page = parse(f"{grounded('text')}\nFirst.\n\n<|ref|>title<|/ref|>\n# Heading")
    assert page.malformed
    assert "has no <|det|>" in page.problems[0]
    assert page.markdown == "First.\n\n# Heading"
    assert page.blocks[-1] == Block(label="title", boxes=[], boxes_px=[], text="# Heading")


def test_unbalanced_brackets_are_flagged_and_the_text_kept():
    page = parse(f"{grounded('text', '[[1, 2, 3, 4]')}\nStill here.")
    assert page.malformed
    assert "unreadable box list" in page.problems[0]
    assert page.markdown == "Still here."
    assert page.blocks[0].boxes == []


@pytest.mark.parametrize(
    "payload",
    [
        "[[a, b, c, d]]",
        "[['1', 2, 3, 4]]",
        "[[1, 2, 3]]",
        "[[1, 2, 3, 4, 5]]",
        "[[1, 2, 3, True]]",
        "[[1, 2, 3, 1e999]]",
        "[[1, 2, 3, len('abcd')]]",  # eval would read this as a box; a literal parser must not
        "[1, 2, 3, 4]",
        "[]",
        "{'box': [1, 2, 3, 4]}",
        "",
    ],
)
def test_bad_box_lists_are_flagged_not_evaluated(payload):
    page = parse(f"{grounded('text', payload)}\nStill here.")
    assert page.malformed
    assert page.markdown == "Still here."
    assert page.blocks[0].boxes == []


def test_valid_boxes_survive_next_to_rejected_ones():
    page = parse(grounded("text", "[[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11]]"))
    assert page.blocks[0].boxes == [(1, 2, 3, 4), (8, 9, 10, 11)]
    assert page.malformed
    assert len(page.problems) == 1


def test_box_list_without_label_is_removed_and_flagged():
    page = parse("Before.<|det|>[[1, 2, 3, 4]]<|/det|>\nAfter.")
    assert page.malformed
    assert page.markdown == "Before.\nAfter."
    assert page.blocks == []


def test_stray_closing_tags_are_removed_and_flagged():
    page = parse("One<|/ref|> two<|/det|> three")
    assert page.malformed
    assert len(page.problems) == 2
    assert page.markdown == "One two three"


def test_every_truncation_of_a_page_parses_and_leaves_no_tags():
    for end in range(len(PAGE) + 1):
        assert_no_tags(parse(PAGE[:end]).markdown)


def test_every_cut_inside_a_tag_is_flagged():
    start = PAGE.index(REF_OPEN, 1) + len(REF_OPEN)
    end = PAGE.index(DET_CLOSE, start) + len(DET_CLOSE)
    for cut in range(start, end):
        assert parse(PAGE[:cut]).malformed, PAGE[:cut]


def test_image_size_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        parse_page("text", (0, 1584))
