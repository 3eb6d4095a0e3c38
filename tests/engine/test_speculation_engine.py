"""Speculative decoding in the engine on a real (tiny) llama.cpp model: the same tokens as without it.

The synthetic model's greedy choices win by whole units, so a sequence decoding alone must give
exactly the tokens it gives without speculation; beside others (batched rounding) it is checked
with GreedyReference. Sampled requests keep their distribution: a chi-square test over seeds.
"""

from __future__ import annotations

import queue
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.forward import WholeModel
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.speculation import SpeculationBudget
from swarm.launch.local_swarm import wait_until
from swarm.shared.errors import SwarmError
from swarm.shared.stage_messages import Sampled, StageWork
from swarm.shared.types import (
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    TokenLogprob,
)
from tests.engine.chi_square import same_distribution
from tests.greedy_check import GreedyReference

GREEDY = SamplingParams(temperature=0.0)
# Prompts that repeat themselves (proposals to accept or refuse) and ordinary ones.
PROMPTS = [
    "Hello world",
    "a b c d a b c d a b c",
    "the cat sat on the mat. the cat sat on the",
    "1 2 3 4 5 1 2 3 4 5 1 2 3",
    "def f(x): return x + 1\ndef g(x): return x + 1\ndef h(x): return",
    "Once upon a time",
    "red green blue red green blue red",
    "numbers 1 2 3",
    "the sea and the sky and the sea and the",
    "to be or not to be, to be or not",
]


class Run:
    """One request's events, received from the engine thread."""

    def __init__(self, engine: BatchEngine, request: GenerationRequest) -> None:
        self.events: queue.SimpleQueue[GenerationEvent | SwarmError] = queue.SimpleQueue()
        engine.submit(request, self.events.put)

    def result(self, timeout_s: float = 60) -> tuple[list[int], str, Finished]:
        tokens: list[int] = []
        text = ""
        while True:
            event = self.events.get(timeout=timeout_s)
            if isinstance(event, SwarmError):
                raise event
            if isinstance(event, Finished):
                return tokens, text, event
            tokens += event.token_ids
            text += event.text


def _engine(model: Path, speculate: bool, slots: int = 8) -> BatchEngine:
    engine = BatchEngine(LlamaModel(model), EngineConfig(slots=slots, context_per_slot=512, speculate=speculate))
    engine.start()
    return engine


def _stop(*engines: BatchEngine) -> None:
    """Stops each engine and frees its model (a model left open keeps its file mapped in this process)."""
    for engine in engines:
        engine.stop()
        engine.model.close()


@pytest.fixture(scope="module")
def engines(tiny_model: Path) -> Iterator[tuple[BatchEngine, BatchEngine]]:
    off, on = _engine(tiny_model, False), _engine(tiny_model, True)
    yield off, on
    _stop(off, on)


@pytest.fixture(scope="module")
def eager(tiny_model: Path) -> Iterator[BatchEngine]:
    """An engine whose sequences verify at least one proposed token whenever their context has one, however
    they fare: sampled requests on a random model seldom pay for proposals, and these tests need many."""
    config = EngineConfig(slots=8, context_per_slot=512, speculate=True, speculation=SpeculationBudget.eager())
    engine = BatchEngine(LlamaModel(tiny_model), config)
    engine.start()
    yield engine
    _stop(engine)


def _assert_cache_matches_its_record(engine: BatchEngine, exact: bool = True) -> None:
    """Every slot's record of its cached tokens covers exactly its KV cells (rejected rows left both); not
    exact: the record claims no cell the cache lacks (a cancelled proposal's accepted rows may stay unclaimed)."""
    forward = engine._forward
    assert isinstance(forward, WholeModel)
    wait_until(lambda: engine.stats().slots_busy == 0, 10, "the engine to go idle")
    for slot in engine._slots:
        held = forward.cached_positions(slot.seq_id)
        assert held == len(slot.cached) if exact else held >= len(slot.cached), slot.seq_id


def _request(i: int, prompt: str, max_tokens: int = 96, **fields: object) -> GenerationRequest:
    return GenerationRequest(f"r{i}", "tiny", prompt, max_tokens, fields.pop("sampling", GREEDY), **fields)  # type: ignore[arg-type]


def _token(sampled: Sampled | None) -> int:
    assert sampled is not None
    return sampled.token


def _decided(forward: WholeModel) -> list[int]:
    """The tokens the one work item of the oldest step decided."""
    (decided,) = forward.receive_decided()
    assert decided is not None
    return [s.token for s in decided]


def test_whole_model_keeps_the_accepted_prefix_and_drops_the_rest(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    forward = WholeModel(model, slots=2, context_per_slot=256, batch_size=64, threads=2)
    try:
        prompt = model.tokenize("the cat sat on the mat")
        forward.open(0, GREEDY, prompt, 0)
        forward.send([StageWork(0, 0, tuple(prompt), sample=True)])
        greedy = [_token(forward.receive()[0])]
        for _ in range(12):  # the model's own continuation, one token per step
            forward.send([StageWork(0, len(prompt) + len(greedy) - 1, (greedy[-1],), sample=True)])
            greedy.append(_token(forward.receive()[0]))

        forward.open(1, GREEDY, prompt, 0)
        forward.send([StageWork(1, 0, tuple(prompt), sample=True)])
        assert _token(forward.receive()[0]) == greedy[0]
        # A right proposal of 4 tokens: all kept, plus the model's token after them.
        position = len(prompt)
        forward.send([StageWork(1, position, (greedy[0], *greedy[1:5]), sample=True)], [4])
        assert _decided(forward) == greedy[1:6]
        position += 5
        # A proposal wrong at its second token: one kept, the model's own token in place of the wrong one.
        wrong = (greedy[6], (greedy[7] + 1) % model.vocab_size, greedy[8])
        forward.send([StageWork(1, position, (greedy[5], *wrong), sample=True)], [3])
        assert _decided(forward) == greedy[6:8]
        position += 2
        # The rejected rows left no trace: decoding on from here gives the model's continuation.
        tail = [greedy[7]]
        for _ in range(4):
            forward.send([StageWork(1, position, (tail[-1],), sample=True)])
            tail.append(_token(forward.receive()[0]))
            position += 1
        assert tail[1:] == greedy[8:12]
    finally:
        forward.close()
        model.close()


def test_greedy_speculation_gives_the_same_tokens_alone(
    engines: tuple[BatchEngine, BatchEngine], eager: BatchEngine
) -> None:
    # The eager engine verifies a proposal whenever there is one: whether the default budget thinks a
    # proposal pays depends on what this CPU measures a step of 1+k rows to cost.
    off, on = engines[0], eager
    accepted = 0
    for i, prompt in enumerate(PROMPTS):
        plain, plain_text, plain_end = Run(off, _request(i, prompt)).result()
        fast, fast_text, fast_end = Run(on, _request(i, prompt)).result()
        assert (fast, fast_text) == (plain, plain_text), prompt
        assert (fast_end.reason, fast_end.completion_tokens) == (plain_end.reason, plain_end.completion_tokens)
        assert plain_end.proposed_tokens == 0
        assert 0 <= fast_end.accepted_tokens <= fast_end.proposed_tokens
        accepted += fast_end.accepted_tokens
    assert accepted > 0  # some proposals were right: the accepting path ran
    _assert_cache_matches_its_record(on)
    assert on.stats().accepted_tokens >= accepted


def test_concurrent_streams_mixing_speculating_and_plain_sequences(
    engines: tuple[BatchEngine, BatchEngine], tiny_model: Path
) -> None:
    _, on = engines
    runs = [Run(on, _request(i, prompt, speculate=i % 2 == 0)) for i, prompt in enumerate(PROMPTS)]
    reference = GreedyReference(tiny_model)
    proposed = 0
    try:
        for i, (prompt, run) in enumerate(zip(PROMPTS, runs, strict=True)):
            tokens, _, finished = run.result()
            assert finished.completion_tokens == len(tokens) == 96
            reference.check(prompt, tokens)
            if i % 2:
                assert finished.proposed_tokens == 0
            proposed += finished.proposed_tokens
    finally:
        reference.close()
    assert proposed > 0


def test_stop_strings_max_tokens_and_prefix_reuse_as_without(engines: tuple[BatchEngine, BatchEngine]) -> None:
    off, on = engines
    prompt = PROMPTS[2]
    _, text, _ = Run(off, _request(0, prompt)).result()
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    for max_tokens in (1, 2, 7, 33):
        plain = Run(off, _request(1, prompt, max_tokens)).result()
        fast = Run(on, _request(1, prompt, max_tokens)).result()
        assert fast[:2] == plain[:2]
        assert fast[2].completion_tokens == max_tokens and fast[2].reason == FinishReason.LENGTH
    plain = Run(off, _request(2, prompt, stop=(stop,))).result()
    fast = Run(on, _request(2, prompt, stop=(stop,))).result()
    assert fast[1] == plain[1] and stop not in fast[1]
    assert fast[2].reason == FinishReason.STOP
    # Its cache holds only accepted tokens: a prompt extending the last one reuses it and decodes on alike.
    again = prompt + fast[1]
    plain = Run(off, _request(3, again)).result()
    fast = Run(on, _request(3, again)).result()
    assert fast[:2] == plain[:2]
    assert fast[2].cached_prompt_tokens > 0
    _assert_cache_matches_its_record(on)


class CancelOnProposal(WholeModel):
    """The whole model, cancelling its request while a step that verifies a proposal is in flight."""

    engine: BatchEngine
    cancelled = 0

    def send(self, work: list[StageWork], proposed: Sequence[int] = ()) -> None:
        super().send(work, proposed)
        if any(proposed) and not self.cancelled:
            self.cancelled += 1
            self.engine.cancel("doomed")  # drained before this step's tokens are received


def test_a_sequence_cancelled_with_a_proposal_in_flight_leaves_a_clean_slot(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    forward = CancelOnProposal(model, slots=1, context_per_slot=512, batch_size=512, threads=2)
    on = BatchEngine(model, EngineConfig(slots=1, context_per_slot=512, speculate=True), forward)
    forward.engine = on
    off = _engine(tiny_model, False, slots=1)
    on.start()
    try:
        prompt = PROMPTS[1]
        doomed = Run(on, GenerationRequest("doomed", "tiny", prompt, 200, GREEDY))
        assert doomed.result()[2].reason == FinishReason.CANCELLED
        assert forward.cancelled == 1
        _assert_cache_matches_its_record(on, exact=False)
        # The slot is reused (prefix kept) and decodes on as a fresh engine would.
        plain = Run(off, _request(9, prompt)).result()
        fast = Run(on, _request(9, prompt)).result()
        assert fast[:2] == plain[:2]
        assert fast[2].cached_prompt_tokens == fast[2].prompt_tokens - 1
        _assert_cache_matches_its_record(on)
    finally:
        _stop(off, on)


def test_seeded_sampling_draws_the_same_tokens_alone(
    engines: tuple[BatchEngine, BatchEngine], eager: BatchEngine
) -> None:
    off, on = engines[0], eager
    accepted = 0
    for i, prompt in enumerate(PROMPTS):
        sampling = SamplingParams(temperature=0.5, seed=i)
        plain = Run(off, _request(i, prompt, sampling=sampling)).result()
        fast = Run(on, _request(i, prompt, sampling=sampling)).result()
        assert fast[:2] == plain[:2], prompt  # verification makes one draw per decided token, as without it
        accepted += fast[2].accepted_tokens
    assert accepted > 0


def test_sampled_tokens_keep_their_distribution(engines: tuple[BatchEngine, BatchEngine], eager: BatchEngine) -> None:
    off, on = engines[0], eager
    _, text, _ = Run(off, _request(0, "Hello world", 12)).result()
    prompt = ("Hello world" + text) * 3 + "Hello world"  # its tokens recur: proposals to verify
    samples: list[Counter[tuple[int, ...]]] = []
    proposed = 0
    for engine, seeds in ((off, range(0, 1500)), (on, range(100_000, 101_500))):
        counts: Counter[tuple[int, ...]] = Counter()
        for first in range(seeds.start, seeds.stop, 100):  # a hundred requests at a time
            sampling = [SamplingParams(temperature=1.0, seed=seed) for seed in range(first, first + 100)]
            runs = [Run(engine, _request(i, prompt, 4, sampling=params)) for i, params in enumerate(sampling)]
            for run in runs:
                tokens, _, finished = run.result()
                counts[tuple(tokens[1:4])] += 1  # decided after the first token: where proposals are verified
                proposed += finished.proposed_tokens
        samples.append(counts)
    assert proposed > 20  # the speculating arm verified proposals
    assert same_distribution(samples[0], samples[1])
    assert not same_distribution(samples[0], samples[1] + Counter({min(samples[1]): 150}))  # it can fail


def test_log_probabilities_of_verified_tokens_equal_those_without(
    engines: tuple[BatchEngine, BatchEngine], eager: BatchEngine
) -> None:
    off = engines[0]
    sampling = SamplingParams(temperature=0.0, logprobs=True, top_logprobs=3)
    proposed = 0
    for i, prompt in enumerate(PROMPTS[1:4]):
        runs = [Run(engine, _request(i, prompt, 48, sampling=sampling)) for engine in (off, eager)]
        (plain, plain_lp, _), (fast, fast_lp, fast_end) = (_with_logprobs(run) for run in runs)
        proposed += fast_end.proposed_tokens
        assert fast == plain
        assert [lp.token for lp in fast_lp] == fast
        for ours, theirs in zip(fast_lp, plain_lp, strict=True):
            assert ours.logprob == pytest.approx(theirs.logprob, abs=1e-3)
            assert [t.token for t in ours.top] == [t.token for t in theirs.top]
    assert proposed > 0


def _with_logprobs(run: Run) -> tuple[list[int], list[TokenLogprob], Finished]:
    tokens: list[int] = []
    logprobs: list[TokenLogprob] = []
    while not isinstance(event := run.events.get(timeout=60), Finished):
        assert not isinstance(event, SwarmError), event
        tokens += event.token_ids
        logprobs += event.logprobs
    return tokens, logprobs, event
