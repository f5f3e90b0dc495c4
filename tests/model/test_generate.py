import dataclasses

import torch

from dsocr.model.generate import EOS, LENGTH, greedy_generate
from dsocr.model.ngram import NGramRule


def _prompt(tiny_model, length: int = 12, batch: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 400, (batch, length), generator=generator)
    return tiny_model.model.decoder.embed_tokens(ids)


def test_cached_decoding_gives_the_logits_of_a_full_forward(tiny_model):
    decoder = tiny_model.model.decoder
    embeds = _prompt(tiny_model, 20)
    positions = torch.arange(20)[None]
    with torch.no_grad():
        full = decoder(embeds, positions)
        cache = decoder.new_cache(1, 20)
        prefill = decoder(embeds[:, :15], positions[:, :15], cache)
        steps = [decoder(embeds[:, i : i + 1], positions[:, i : i + 1], cache) for i in range(15, 20)]
    torch.testing.assert_close(torch.cat([prefill, *steps], dim=1), full, rtol=1e-5, atol=1e-5)


def test_rows_at_different_positions_decode_as_if_alone(tiny_model):
    decoder = tiny_model.model.decoder
    long, short = _prompt(tiny_model, 10), _prompt(tiny_model, 6)[:, :6]
    with torch.no_grad():
        alone_long = decoder(long, torch.arange(10)[None])[:, -1]
        alone_short = decoder(short, torch.arange(6)[None])[:, -1]
        cache = decoder.new_cache(2, 10)
        # Prefill each row separately, then one batched step with each row at its own position.
        one = decoder.new_cache(1, 10)
        decoder(long[:, :9], torch.arange(9)[None], one)
        cache.k[:, 0], cache.v[:, 0] = one.k[:, 0], one.v[:, 0]
        one = decoder.new_cache(1, 10)
        decoder(short[:, :5], torch.arange(5)[None], one)
        cache.k[:, 1], cache.v[:, 1] = one.k[:, 0], one.v[:, 0]
        step = torch.cat([long[:, 9:10], short[:, 5:6]])
        batched = decoder(step, torch.tensor([[9], [5]]), cache)[:, -1]
    torch.testing.assert_close(batched[0], alone_long[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched[1], alone_short[0], rtol=1e-5, atol=1e-5)


def test_generation_stops_at_eos_without_returning_it(tiny_model):
    decoder = tiny_model.model.decoder
    embeds = _prompt(tiny_model)
    [free] = greedy_generate(decoder, embeds, 8, eos_id=None)
    eos = free.token_ids[3]  # pretend the fourth greedy token is EOS
    [stopped] = greedy_generate(decoder, embeds, 8, eos_id=eos)
    assert stopped.finish_reason == EOS
    assert stopped.token_ids == free.token_ids[: free.token_ids.index(eos)]


def test_generation_without_eos_ends_with_length_after_max_new_tokens(tiny_model):
    [result] = greedy_generate(tiny_model.model.decoder, _prompt(tiny_model), 5, eos_id=None)
    assert result.finish_reason == LENGTH
    assert len(result.token_ids) == 5


def test_prompt_and_output_never_exceed_the_position_limit(tiny_model, monkeypatch):
    decoder = tiny_model.model.decoder
    monkeypatch.setattr(decoder, "config", dataclasses.replace(decoder.config, max_position_embeddings=16))
    [result] = greedy_generate(decoder, _prompt(tiny_model, 12), 100, eos_id=None)
    assert (len(result.token_ids), result.finish_reason) == (4, LENGTH)


def test_batched_rows_generate_what_each_row_generates_alone(tiny_model):
    decoder = tiny_model.model.decoder
    embeds = _prompt(tiny_model, batch=3)
    together = greedy_generate(decoder, embeds, 10, eos_id=None)
    alone = [greedy_generate(decoder, embeds[i : i + 1], 10, eos_id=None)[0] for i in range(3)]
    assert together == alone


def test_the_ngram_rule_keeps_repeats_out_of_the_output(tiny_model):
    decoder = tiny_model.model.decoder
    embeds = _prompt(tiny_model)
    rule = NGramRule(size=2, window=40)
    [free] = greedy_generate(decoder, embeds, 40, eos_id=None)
    [ruled] = greedy_generate(decoder, embeds, 40, eos_id=None, ngram=rule)
    bigrams = list(zip(free.token_ids, free.token_ids[1:]))
    assert len(set(bigrams)) < len(bigrams), "the tiny model should repeat itself without the rule"
    ruled_bigrams = list(zip(ruled.token_ids, ruled.token_ids[1:]))
    assert len(set(ruled_bigrams)) == len(ruled_bigrams)


def _forced_mean_logprob(decoder, embeds: torch.Tensor, picked: list[int]) -> float:
    """The mean log-probability of ``picked`` after the prompt, by one full forward over prompt and tokens."""
    sequence = torch.cat([embeds, decoder.embed_tokens(torch.tensor([picked[:-1]]))], dim=1)
    with torch.no_grad():
        logits = decoder(sequence, torch.arange(sequence.shape[1])[None])[0, embeds.shape[1] - 1 :]
    return torch.log_softmax(logits, dim=-1)[torch.arange(len(picked)), picked].mean().item()


def test_mean_logprob_is_the_full_forward_log_probability_of_the_picked_tokens_eos_included(tiny_model):
    decoder = tiny_model.model.decoder
    embeds = _prompt(tiny_model)
    [free] = greedy_generate(decoder, embeds, 6, eos_id=None)
    eos = free.token_ids[4]  # the fifth greedy token plays EOS: it is picked, so it counts, but not returned
    [result] = greedy_generate(decoder, embeds, 6, eos_id=eos)
    assert result.finish_reason == EOS
    assert abs(result.mean_logprob - _forced_mean_logprob(decoder, embeds, result.token_ids + [eos])) < 1e-5


def test_mean_logprob_scores_tokens_the_ngram_rule_forced_under_the_unbanned_distribution(tiny_model):
    # The ban changes which token is picked, not how sure the model was: a forced second choice scores low.
    decoder = tiny_model.model.decoder
    embeds = _prompt(tiny_model)
    [free] = greedy_generate(decoder, embeds, 12, eos_id=None)
    [banned] = greedy_generate(decoder, embeds, 12, eos_id=None, ngram=NGramRule(size=1, window=12))
    assert banned.token_ids != free.token_ids, "the rule banned nothing: the test proves nothing"
    assert abs(banned.mean_logprob - _forced_mean_logprob(decoder, embeds, banned.token_ids)) < 1e-5
    assert banned.mean_logprob < free.mean_logprob
