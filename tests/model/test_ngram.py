import pytest

from dsocr.model.ngram import NGramRule, default_rule
from dsocr.model.tiny import build_tokenizer
from dsocr.model.tokenizer import Tokenizer


def test_nothing_is_banned_below_n_tokens():
    assert NGramRule(size=3, window=10).banned([7, 7]) == set()


def test_repeat_of_an_earlier_trigram_is_banned():
    # Last two tokens (1, 2) were once followed by 3.
    assert NGramRule(size=3, window=10).banned([1, 2, 3, 9, 1, 2]) == {3}


def test_every_continuation_of_the_prefix_is_banned():
    assert NGramRule(size=3, window=20).banned([1, 2, 3, 1, 2, 4, 1, 2, 5, 1, 2]) == {3, 4, 5}


def test_no_ban_without_an_earlier_match():
    assert NGramRule(size=3, window=10).banned([1, 2, 3, 4, 5]) == set()


def test_current_suffix_does_not_match_itself():
    # (8, 9) occurs only as the suffix being extended, so nothing is banned.
    assert NGramRule(size=3, window=10).banned([5, 6, 8, 9]) == set()


def test_earlier_ngram_overlapping_the_suffix_counts():
    # G = 7 7 7: the trigram starting at 0 is (7, 7, 7) and its first two tokens equal the suffix (7, 7).
    assert NGramRule(size=3, window=10).banned([7, 7, 7]) == {7}


def test_ngram_starting_exactly_at_the_window_edge_is_seen():
    # T = 7, W = 7: the earliest start index is T - W = 0, where (1, 2, 3) begins.
    assert NGramRule(size=3, window=7).banned([1, 2, 3, 4, 5, 1, 2]) == {3}


def test_ngram_starting_before_the_window_is_ignored():
    # T = 7, W = 6: start index 0 lies outside the window.
    assert NGramRule(size=3, window=6).banned([1, 2, 3, 4, 5, 1, 2]) == set()


def test_whitelisted_ids_are_never_banned():
    rule = NGramRule(size=3, window=20, whitelist=frozenset({3}))
    assert rule.banned([1, 2, 3, 1, 2, 4, 1, 2]) == {4}


def test_bigram_rule_bans_tokens_that_followed_the_last_token():
    assert NGramRule(size=2, window=10).banned([4, 5, 4, 6, 4]) == {5, 6}


def test_tuples_and_lists_give_the_same_result():
    rule = NGramRule(size=3, window=10)
    assert rule.banned((1, 2, 3, 1, 2)) == rule.banned([1, 2, 3, 1, 2]) == {3}


def test_defaults_match_upstream_vllm():
    rule = NGramRule()
    assert (rule.size, rule.window, rule.whitelist) == (30, 90, frozenset())


def test_size_below_one_is_rejected():
    with pytest.raises(ValueError, match="size"):
        NGramRule(size=0, window=10)


def test_window_smaller_than_size_is_rejected():
    with pytest.raises(ValueError, match="window"):
        NGramRule(size=5, window=4)


def test_default_rule_whitelists_the_tokenizers_table_cells():
    tokenizer = Tokenizer(build_tokenizer())
    rule = default_rule(tokenizer)
    assert rule.whitelist == {tokenizer.token_id("<td>"), tokenizer.token_id("</td>")}
    assert (rule.size, rule.window) == (30, 90)


def test_default_rule_lets_table_cells_repeat():
    tokenizer = Tokenizer(build_tokenizer())
    td, close = tokenizer.token_id("<td>"), tokenizer.token_id("</td>")
    rule = NGramRule(size=3, window=90, whitelist=default_rule(tokenizer).whitelist)
    assert rule.banned([td, close, td, close, td]) == set()
