"""The continuous-batching engine: pages join and leave at any step and decode exactly as if alone."""

import pytest
import torch

from dsocr.model.generate import CANCELLED, LENGTH, DecodeEngine, Sequence, greedy_generate


def _prompts(tiny_model, lengths: list[int]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return [
        tiny_model.model.decoder.embed_tokens(torch.randint(3, 400, (length,), generator=generator))
        for length in lengths
    ]


def _alone(tiny_model, embeds: torch.Tensor, max_new_tokens: int) -> list[int]:
    [result] = greedy_generate(tiny_model.model.decoder, embeds[None], max_new_tokens, eos_id=None)
    return result.token_ids


def _run(engine: DecodeEngine, arrivals: dict[int, list[Sequence]]) -> dict[int, int]:
    """Step until idle, submitting ``arrivals[step]`` before that step; returns the running batch size per step."""
    sizes, step = {}, 0
    while not engine.idle or any(s >= step for s in arrivals):
        for sequence in arrivals.get(step, []):
            engine.submit(sequence)
        engine.step()
        sizes[step] = len(engine.running)
        step += 1
    return sizes


def test_pages_joining_mid_run_decode_as_if_alone(tiny_model):
    prompts = _prompts(tiny_model, [9, 14, 6, 11])
    budgets = [12, 5, 9, 7]
    sequences = [Sequence(embeds, budget) for embeds, budget in zip(prompts, budgets)]
    engine = DecodeEngine(tiny_model.model.decoder, eos_id=None, max_running=4, max_context=32)
    sizes = _run(engine, {0: sequences[:2], 3: sequences[2:3], 4: sequences[3:]})
    assert max(sizes.values()) >= 3
    for sequence, embeds, budget in zip(sequences, prompts, budgets):
        assert sequence.finish_reason == LENGTH
        assert sequence.token_ids == _alone(tiny_model, embeds, budget)


def test_pages_wait_for_a_free_row_when_the_cache_is_full(tiny_model):
    prompts = _prompts(tiny_model, [8, 8, 8])
    sequences = [Sequence(embeds, 6) for embeds in prompts]
    engine = DecodeEngine(tiny_model.model.decoder, eos_id=None, max_running=2, max_context=16)
    for sequence in sequences:
        engine.submit(sequence)
    engine.step()
    assert engine.running == sequences[:2] and list(engine.waiting) == sequences[2:]
    while not engine.idle:
        engine.step()
        assert len(engine.running) <= 2
    assert [s.token_ids for s in sequences] == [_alone(tiny_model, p, 6) for p in prompts]


def test_static_batching_admits_only_into_an_empty_batch(tiny_model):
    short, long, late = (Sequence(p, n) for p, n in zip(_prompts(tiny_model, [8, 8, 8]), [2, 10, 3]))
    engine = DecodeEngine(tiny_model.model.decoder, eos_id=None, max_running=2, max_context=24, batching="static")
    engine.submit(short)
    engine.submit(long)
    engine.submit(late)
    while short.finish_reason is None:
        engine.step()
    engine.step()
    assert engine.running == [long] and list(engine.waiting) == [late]
    while not engine.idle:
        engine.step()
    assert late.finish_reason == LENGTH


def test_a_cancelled_page_frees_its_row_for_a_waiting_one(tiny_model):
    cancel = {"now": False}
    first = Sequence(_prompts(tiny_model, [8])[0], 20, is_cancelled=lambda: cancel["now"])
    second = Sequence(_prompts(tiny_model, [10])[0], 4)
    engine = DecodeEngine(tiny_model.model.decoder, eos_id=None, max_running=1, max_context=32)
    engine.submit(first)
    engine.submit(second)
    engine.step()
    cancel["now"] = True
    ended = engine.step()
    assert ended == [first] and first.finish_reason == CANCELLED
    assert engine.running == [second]
    while not engine.idle:
        engine.step()
    assert second.token_ids == _alone(tiny_model, second.embeds, 4)


def test_output_is_cut_to_the_room_left_in_a_cache_row(tiny_model):
    sequence = Sequence(_prompts(tiny_model, [10])[0], 100)
    engine = DecodeEngine(tiny_model.model.decoder, eos_id=None, max_running=1, max_context=16)
    engine.submit(sequence)
    while not engine.idle:
        engine.step()
    assert len(sequence.token_ids) == 6 and sequence.finish_reason == LENGTH


def test_a_prompt_longer_than_a_cache_row_is_refused(tiny_model):
    engine = DecodeEngine(tiny_model.model.decoder, eos_id=None, max_running=1, max_context=8)
    with pytest.raises(ValueError, match="leaving none"):
        engine.submit(Sequence(_prompts(tiny_model, [8])[0], 4))


def test_clearing_returns_every_unfinished_page_and_leaves_the_engine_usable(tiny_model):
    prompts = _prompts(tiny_model, [8, 8, 8])
    engine = DecodeEngine(tiny_model.model.decoder, eos_id=None, max_running=2, max_context=16)
    sequences = [Sequence(p, 4) for p in prompts]
    for sequence in sequences:
        engine.submit(sequence)
    engine.step()
    assert set(engine.clear()) == set(sequences) and engine.idle
    again = Sequence(prompts[0], 4)
    engine.submit(again)
    while not engine.idle:
        engine.step()
    assert again.token_ids == _alone(tiny_model, prompts[0], 4)
