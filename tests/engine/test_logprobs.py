"""Log-probabilities in the BatchEngine on real llama.cpp: the same numbers llama-cpp-python's
create_completion(logprobs=k) reports for the same greedy run, one per token of each piece."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from llama_cpp import Llama

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.llama_adapter.token_logprobs import log_softmax, token_logprob
from swarm.shared.errors import SwarmError
from swarm.shared.types import Finished, GenerationEvent, GenerationRequest, SamplingParams, TextPiece

pytestmark = pytest.mark.timeout(60)
PROMPT = "Hello world"
# llama-cpp-python's logprobs need logits_all=True, which computes every prompt row's logits (a matrix
# product where the engine computes one row): its numbers round a little differently, not by more.
TOLERANCE = {"rel": 2e-2, "abs": 2e-3}
TOKENS = 12
TOP = 3


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Iterator[BatchEngine]:
    model = LlamaModel(tiny_model)
    engine = BatchEngine(model, EngineConfig(slots=1, context_per_slot=256, threads=1))
    engine.start()
    yield engine
    engine.stop()
    model.close()


def run(engine: BatchEngine, sampling: SamplingParams, request_id: str) -> list[TextPiece]:
    events: queue.SimpleQueue[GenerationEvent | SwarmError] = queue.SimpleQueue()
    engine.submit(GenerationRequest(request_id, "tiny", PROMPT, TOKENS, sampling), events.put)
    pieces = []
    while not isinstance(event := events.get(timeout=30), Finished):
        assert not isinstance(event, SwarmError), event
        pieces.append(event)
    return pieces


def test_greedy_logprobs_equal_llama_cpp_pythons_create_completion(engine: BatchEngine, tiny_model: Path) -> None:
    pieces = run(engine, SamplingParams(temperature=0.0, logprobs=True, top_logprobs=TOP), "lp")
    assert all(len(p.logprobs) == len(p.token_ids) for p in pieces)
    ours = [lp for p in pieces for lp in p.logprobs]
    reference = Llama(str(tiny_model), n_ctx=256, n_threads=1, logits_all=True, verbose=False)
    theirs = reference.create_completion(PROMPT, max_tokens=TOKENS, temperature=0.0, logprobs=TOP)["choices"][0]
    reference.close()
    expected = theirs["logprobs"]
    assert "".join(p.text for p in pieces) == theirs["text"]
    assert [lp.text.decode() for lp in ours] == expected["tokens"]
    assert [lp.logprob for lp in ours] == pytest.approx(expected["token_logprobs"], **TOLERANCE)
    for lp, top in zip(ours, expected["top_logprobs"], strict=True):
        assert len(lp.top) == TOP
        assert {t.text.decode(): pytest.approx(t.logprob, **TOLERANCE) for t in lp.top} == top
        assert [t.logprob for t in lp.top] == sorted((t.logprob for t in lp.top), reverse=True)
        assert lp.top[0].token == lp.token  # greedy: the choice is the likeliest


def test_logprobs_are_not_computed_unless_asked(engine: BatchEngine) -> None:
    pieces = run(engine, SamplingParams(temperature=0.0), "plain")
    assert pieces and all(p.logprobs == () for p in pieces)


def test_sampled_tokens_get_their_own_logprob_and_zero_top_means_none() -> None:
    logprobs = log_softmax(np.array([0.0, 1.0, 2.0, 2.0], dtype=np.float32))
    assert float(np.exp(logprobs).sum()) == pytest.approx(1.0, abs=1e-6)
    chosen = token_logprob(logprobs, 0, 0)
    assert chosen.token == 0 and chosen.logprob == pytest.approx(float(logprobs[0])) and chosen.top == ()
    assert [t.token for t in token_logprob(logprobs, 0, 3).top] == [2, 3, 1]  # ties in token order


@pytest.mark.parametrize("size", [5, 64, 1000, 262_144])
def test_the_likeliest_are_exactly_a_full_sorts_first(size: int) -> None:
    rng = np.random.default_rng(size)
    logits = rng.standard_normal(size).astype(np.float32) * 4
    logits[rng.integers(0, size, 8)] = logits.max()  # ties at the top, broken by token id
    logprobs = log_softmax(logits)
    for top in (1, 5, 20):
        expected = np.argsort(-logprobs, kind="stable")[: min(top, size)]
        assert [t.token for t in token_logprob(logprobs, 0, top).top] == expected.tolist()
