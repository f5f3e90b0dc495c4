"""Per-page scores equal edit distances worked out by hand; CER and WER are capped at one wholly wrong page."""

import pytest

from dsocr.evaluation.metrics import character_error_rate, normalized_edit_distance, word_error_rate


def test_cer_is_character_edits_over_the_truth_length():
    # "kitten" → "sitting": substitute k→s, e→i, insert g: 3 edits over 7 truth characters.
    assert character_error_rate("kitten", "sitting") == pytest.approx(3 / 7)


def test_cer_of_a_repetition_loop_is_capped_at_one():
    assert character_error_rate("la " * 500, "hello") == 1.0


def test_cer_of_an_empty_page_is_zero_only_for_an_empty_prediction():
    assert (character_error_rate("", ""), character_error_rate("x", "")) == (0.0, 1.0)


def test_wer_counts_whole_words():
    # one substituted word and one deleted word over four truth words
    assert word_error_rate("the quick fox", "the slow brown fox") == pytest.approx(2 / 4)


def test_wer_ignores_how_words_are_spaced():
    assert word_error_rate("a  b\nc", "a b c") == 0.0


def test_ned_is_edits_over_the_longer_text():
    # "abcd" vs "ab": two deletions over the longer length 4, whichever side is longer.
    assert normalized_edit_distance("abcd", "ab") == normalized_edit_distance("ab", "abcd") == 0.5


def test_ned_treats_runs_of_whitespace_as_one_space():
    assert normalized_edit_distance("Title\n\n\nBody  text ", "Title\nBody text") == pytest.approx(0.0)


def test_ned_stays_below_one_where_cer_would_not():
    assert normalized_edit_distance("x" * 100, "y") == 1.0
    assert 0 < normalized_edit_distance("hello" * 20, "hello") < 1
