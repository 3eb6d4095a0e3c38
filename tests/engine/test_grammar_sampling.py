"""Grammar-constrained sampling in the BatchEngine on real llama.cpp: schema conformance, a failover's
replay of resume tokens into the grammar, and the end of generation where the grammar is complete."""

from __future__ import annotations

import json
import queue
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.llama_adapter.grammar_gate import GrammarGate
from swarm.shared.errors import SwarmError
from swarm.shared.json_schema_grammar import json_object_grammar, schema_grammar
from swarm.shared.types import Finished, FinishReason, GenerationEvent, GenerationRequest, SamplingParams
from tests.json_schemas import check_answer, random_schema

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Iterator[LlamaModel]:
    model = LlamaModel(tiny_model)
    yield model
    model.close()


@pytest.fixture(scope="module")
def engine(model: LlamaModel) -> Iterator[BatchEngine]:
    engine = BatchEngine(model, EngineConfig(slots=4, context_per_slot=1024, threads=1))
    engine.start()
    yield engine
    engine.stop()


class Answer:
    """One request's events, gathered from the engine thread."""

    def __init__(self, engine: BatchEngine, request: GenerationRequest) -> None:
        self._events: queue.SimpleQueue[GenerationEvent | SwarmError] = queue.SimpleQueue()
        engine.submit(request, self._events.put)

    def result(self) -> tuple[list[int], Finished]:
        tokens: list[int] = []
        while True:
            event = self._events.get(timeout=30)
            if isinstance(event, SwarmError):
                raise event
            if isinstance(event, Finished):
                return tokens, event
            tokens += event.token_ids


def constrained(
    rid: str, grammar: str, temperature: float = 0.0, seed: int = 0, resume: list[int] | None = None
) -> GenerationRequest:
    params = SamplingParams(temperature=temperature, seed=seed, grammar=grammar)
    return GenerationRequest(rid, "tiny", "Here is the answer:", 600, params, resume_tokens=tuple(resume or ()))


def text_of(model: LlamaModel, tokens: list[int]) -> str:
    return b"".join(model.token_bytes(t) for t in tokens).decode()


# Every way a redraw under the grammar is made: greedy, temperature alone, top-k, top-p with min-p, a penalty.
CHAINS = [
    SamplingParams(temperature=0.0),
    SamplingParams(temperature=1.0),
    SamplingParams(temperature=0.7, top_k=40),
    SamplingParams(temperature=1.2, top_p=0.9, min_p=0.05),
    SamplingParams(temperature=0.8, repeat_penalty=1.2),
]


def test_random_schemas_hold_for_every_kind_of_chain_decoded_together(engine: BatchEngine, model: LlamaModel) -> None:
    rng = random.Random(17)
    schemas = [random_schema(rng) for _ in range(15)]
    answers = []
    for i, schema in enumerate(schemas):
        params = replace(CHAINS[i % len(CHAINS)], seed=i, grammar=schema_grammar(schema, "schema"))
        answers.append(Answer(engine, GenerationRequest(f"schema-{i}", "tiny", "Here is the answer:", 600, params)))
    for i, (schema, answer) in enumerate(zip(schemas, answers, strict=True)):
        tokens, finished = answer.result()
        assert finished.reason is FinishReason.STOP, f"schema {i} ran out of tokens: {json.dumps(schema)}"
        # The tokens themselves, in the order they came, through a fresh grammar (raises on the first misfit),
        # and their text, read on this thread while the engine's thread detokenizes other answers.
        fresh = GrammarGate(model.vocab, schema_grammar(schema, "schema"), model.is_end_of_generation)
        try:
            fresh.replay(tokens)
        finally:
            fresh.close()
        check_answer(text_of(model, tokens), schema)


def test_resume_tokens_rebuild_the_grammar_state_so_the_continuation_still_conforms(
    engine: BatchEngine, model: LlamaModel
) -> None:
    rng = random.Random(5)
    for n in range(6):
        schema = random_schema(rng)
        grammar = schema_grammar(schema, "schema")
        tokens, _ = Answer(engine, constrained(f"whole-{n}", grammar, temperature=1.0, seed=n)).result()
        cut = rng.randrange(1, len(tokens))
        # Another seed: the continuation differs from the first answer, and must fit what came before.
        resumed = constrained(f"resumed-{n}", grammar, temperature=1.0, seed=100 + n, resume=tokens[:cut])
        rest, finished = Answer(engine, resumed).result()
        assert finished.reason is FinishReason.STOP
        assert finished.completion_tokens == cut + len(rest) + 1  # the end token counts
        check_answer(text_of(model, tokens[:cut] + rest), schema)


def test_a_greedy_failover_continues_exactly_as_the_whole_answer(engine: BatchEngine) -> None:
    grammar = schema_grammar(random_schema(random.Random(9)), "schema")
    whole, _ = Answer(engine, constrained("greedy-whole", grammar)).result()
    cut = len(whole) // 2
    rest, _ = Answer(engine, constrained("greedy-resumed", grammar, resume=whole[:cut])).result()
    assert whole[:cut] + rest == whole


def test_resume_tokens_the_grammar_forbids_fail_the_request_not_the_worker(
    engine: BatchEngine, model: LlamaModel
) -> None:
    grammar = schema_grammar({"type": "object", "properties": {"a": {"type": "integer"}}}, "schema")
    with pytest.raises(SwarmError, match="does not fit the grammar"):
        Answer(engine, constrained("bad-resume", grammar, resume=model.tokenize("hello"))).result()
    tokens, finished = Answer(engine, constrained("after-bad-resume", grammar)).result()
    assert finished.reason is FinishReason.STOP
    assert isinstance(json.loads(text_of(model, tokens)), dict)


def test_a_complete_grammar_lets_the_end_through_and_one_allowing_only_the_end_ends_the_sequence(
    engine: BatchEngine, model: LlamaModel
) -> None:
    for seed in range(4):
        tokens, finished = Answer(engine, constrained(f"yes-no-{seed}", 'root ::= "yes" | "no"', 1.0, seed)).result()
        assert text_of(model, tokens) in ("yes", "no")
        assert finished.reason is FinishReason.STOP and finished.completion_tokens == len(tokens) + 1


@pytest.mark.slow
def test_json_object_answers_of_gemma_parse(gemma_model: Path) -> None:
    gemma = LlamaModel(gemma_model)
    engine = BatchEngine(gemma, EngineConfig(slots=1, context_per_slot=512, threads=1))
    engine.start()
    try:
        prompt = (
            "<start_of_turn>user\nWrite Alice, aged 30, as a JSON object with the keys name and age."
            "<end_of_turn>\n<start_of_turn>model\n"
        )
        # The penalty keeps Gemma 270M from repeating one key until max_tokens (and tests that chain too).
        params = SamplingParams(temperature=0.0, repeat_penalty=1.3, grammar=json_object_grammar())
        tokens, finished = Answer(engine, GenerationRequest("gemma-json", "gemma", prompt, 200, params)).result()
    finally:
        engine.stop()
        gemma.close()
    assert finished.reason is FinishReason.STOP
    assert isinstance(json.loads(text_of(gemma, tokens)), dict)


def test_a_schema_string_refuses_raw_control_characters_as_json_does(model: LlamaModel) -> None:
    # llama-cpp-python's converter let a newline into a string: an answer no JSON parser accepts.
    grammar = schema_grammar({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, "s")
    gate = GrammarGate(model.vocab, grammar, model.is_end_of_generation)
    try:
        # One token per character: the tiny vocabulary has every byte.
        token_of = {model.token_bytes(t): t for t in reversed(range(model.vocab_size))}
        for char in b'{"a": "x':
            token = token_of[bytes([char])]
            assert gate.allows(token)
            gate.accept(token)
        assert not gate.allows(token_of[b"\n"]) and not gate.allows(token_of[b"\t"])
        assert gate.allows(token_of[b"y"])
    finally:
        gate.close()
