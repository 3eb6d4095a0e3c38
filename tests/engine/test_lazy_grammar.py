"""A lazy grammar (one with a trigger) in the BatchEngine on real llama.cpp: free text until the trigger appears
in the output, the grammar from there on, including when a failover's resume tokens already hold the trigger."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.llama_adapter.grammar_gate import literal_pattern
from swarm.shared.types import FinishReason, GenerationRequest, SamplingParams
from tests.engine.test_grammar_sampling import Answer, text_of

pytestmark = pytest.mark.timeout(60)

TRIGGER = "<call>"
# After its trigger the answer is one short lowercase word, then the closing marker, then the end.
GRAMMAR = 'root ::= "<call>" [a-z]{1,6} "</call>"'
CALL = re.compile(r"<call>[a-z]{1,6}</call>")


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Iterator[LlamaModel]:
    model = LlamaModel(tiny_model)
    yield model
    model.close()


@pytest.fixture(scope="module")
def engine(model: LlamaModel) -> Iterator[BatchEngine]:
    engine = BatchEngine(model, EngineConfig(slots=2, context_per_slot=512, threads=1))
    engine.start()
    yield engine
    engine.stop()


def request(rid: str, grammar: str = "", trigger: str = "", resume: tuple[int, ...] = ()) -> GenerationRequest:
    params = SamplingParams(temperature=0.0, grammar=grammar, grammar_trigger=trigger)
    return GenerationRequest(rid, "tiny", "The weather today is", 40, params, resume_tokens=resume)


def test_before_its_trigger_a_lazy_grammar_changes_nothing(engine: BatchEngine, model: LlamaModel) -> None:
    # Each decodes alone, so the greedy tokens are the same batch for batch.
    free, _ = Answer(engine, request("free")).result()
    lazy, finished = Answer(engine, request("lazy", GRAMMAR, TRIGGER)).result()
    assert TRIGGER not in text_of(model, free)  # the random model never writes it by itself
    assert lazy == free and finished.reason is FinishReason.LENGTH
    strict, _ = Answer(engine, request("strict", GRAMMAR)).result()  # the same grammar, not lazy: it holds at once
    assert CALL.fullmatch(text_of(model, strict))


def test_once_the_trigger_appears_the_grammar_holds_to_the_end(engine: BatchEngine, model: LlamaModel) -> None:
    for n, written in enumerate(["Let me see. <call>", "Sure <ca", "<call>ab"]):
        # A failover's resume: the tokens a first worker wrote, the trigger among them or not yet whole.
        resume = model.tokenize(written)[1:]  # without the BOS that begins a prompt
        rest, finished = Answer(engine, request(f"resumed-{n}", GRAMMAR, TRIGGER, tuple(resume))).result()
        text = text_of(model, resume + rest)
        if TRIGGER in text:
            assert finished.reason is FinishReason.STOP
            assert CALL.fullmatch(text[text.index(TRIGGER) :]), text
        else:  # "<ca" need not go on as "ll>": then it stays free text
            assert finished.reason is FinishReason.LENGTH


def test_a_trigger_is_matched_as_literal_text() -> None:
    assert literal_pattern("<tool_call>") == b"<tool_call>"
    assert literal_pattern("a.b*(c)[d]{e}|f+g?^$\\/") == rb"a\.b\*\(c\)\[d\]\{e\}\|f\+g\?\^\$\\\/"
