"""A tenant's first sequence on an engine cuts the step under way short and prefills in steps of its own, ahead
of another tenant's decode rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.forward import WholeModel
from swarm.engine.llama_adapter import LlamaModel
from swarm.launch.local_swarm import wait_until
from swarm.shared.types import TextPiece
from tests.engine.test_batch_engine import PROMPTS, Collector, RecordingForward, request
from tests.greedy_check import GreedyReference

CHUNK = 16
LATE_PROMPT = "the sea and the sky " * 12  # 60+ tokens: several chunks


@pytest.mark.parametrize(
    ("running_tenant", "late_tenant", "alone"),
    [("flood", "quiet", True), ("flood", "flood", False), ("", "", False)],
    ids=["another-tenant-prefills-alone", "same-tenant-shares-steps", "no-tenants-share-steps"],
)
def test_a_new_tenants_prefill_goes_alone_while_the_running_tenants_decode(
    tiny_model: Path, running_tenant: str, late_tenant: str, alone: bool
) -> None:
    model = LlamaModel(tiny_model)
    recorder = RecordingForward(WholeModel(model, 3, 512, 512, 1))
    engine = BatchEngine(model, EngineConfig(slots=3, context_per_slot=512, threads=1, prefill_chunk=CHUNK), recorder)
    engine.start()
    try:
        running = {prompt: Collector() for prompt in PROMPTS[:2]}
        first_pieces: dict[str, list[int]] = {}
        for prompt, collector in running.items():
            engine.submit(replace(request(prompt, max_tokens=400), tenant=running_tenant), collector)
            piece = collector.next()
            assert isinstance(piece, TextPiece)  # it is decoding
            first_pieces[prompt] = list(piece.token_ids)
        before = len(recorder.steps)  # steps so far carried only the running sequences
        late = Collector()
        engine.submit(replace(request(LATE_PROMPT, max_tokens=4, rid="late"), tenant=late_tenant), late)
        late_tokens = late.tokens()
        outputs = {prompt: first_pieces[prompt] + collector.tokens() for prompt, collector in running.items()}
        interrupted = engine.stats().interrupted_steps
        wait_until(lambda: engine.stats().slots_busy == 0, 10, "the engine to go idle")
        held = {slot.seq_id: recorder.inner.cached_positions(slot.seq_id) for slot in engine._slots}
        recorded = {slot.seq_id: len(slot.cached) for slot in engine._slots}
    finally:
        engine.stop()
    # The late request cut one step short (its tokens went back, to be decoded again) when it came alone.
    assert interrupted == (1 if alone else 0)
    assert held == recorded  # no slot's record claims a cell the cache lacks, or misses one it holds
    running_sessions = set[int]().union(*recorder.steps[:before])
    late_session = {s for step in recorder.steps[before:] for s in step} - running_sessions
    assert len(running_sessions) == 2 and len(late_session) == 1
    (session,) = late_session
    prompt_rows = len(model.tokenize(LATE_PROMPT))
    prefill_steps, filled, last = [], 0, before
    for index, step in enumerate(recorder.steps[before:], before):
        if session in step and filled < prompt_rows:
            prefill_steps.append(step)
            filled += step[session]
            last = index
    assert filled == prompt_rows and len(prefill_steps) >= 4  # chunked: a chunk a step, whether alone or not
    assert all(step[session] <= CHUNK for step in prefill_steps)
    if alone:
        assert all(set(step) == {session} for step in prefill_steps)  # the running sequences waited
    else:  # today's steps: a token for each running sequence beside each chunk
        assert all(step.keys() == running_sessions | {session} for step in prefill_steps)
    assert any(running_sessions <= step.keys() for step in recorder.steps[last + 1 :])  # and went on decoding after it
    reference = GreedyReference(tiny_model)
    try:
        reference.check(LATE_PROMPT, late_tokens)
        for prompt, tokens in outputs.items():
            assert len(tokens) == 400
            reference.check(prompt, tokens)  # the wait changed no running sequence's greedy text
    finally:
        reference.close()


def test_steps_carry_half_the_slots_decode_rows_while_a_tenant_seen_lately_runs_nothing(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    recorder = RecordingForward(WholeModel(model, 4, 512, 512, 1))
    engine = BatchEngine(model, EngineConfig(slots=4, context_per_slot=512, threads=1, prefill_chunk=CHUNK), recorder)
    engine.start()
    try:
        flood = {prompt: Collector() for prompt in PROMPTS[:3]}
        first_pieces: dict[str, list[int]] = {}
        for prompt, collector in flood.items():
            engine.submit(replace(request(prompt, max_tokens=300), tenant="flood"), collector)
            piece = collector.next()
            assert isinstance(piece, TextPiece)
            first_pieces[prompt] = list(piece.token_ids)
        decoding = len(recorder.steps)
        wait_until(lambda: len(recorder.steps) >= decoding + 3, 10, "three steps of the flood alone")
        alone = recorder.steps[decoding : decoding + 3]
        quiet = Collector()
        engine.submit(replace(request("the sea and the sky", max_tokens=2, rid="quiet"), tenant="quiet"), quiet)
        quiet.tokens()
        ended = len(recorder.steps)  # the quiet request is over: it may come back
        wait_until(lambda: len(recorder.steps) >= ended + 12, 10, "twelve steps after the quiet request")
        after = recorder.steps[ended + 1 : ended + 12]
        outputs = {prompt: first_pieces[prompt] + collector.tokens() for prompt, collector in flood.items()}
    finally:
        engine.stop()
    assert all(len(step) == 3 for step in alone)  # one tenant alone: every decode row in each step
    assert all(len(step) <= 2 for step in after)  # half of 4 slots while the quiet tenant runs nothing
    flood_sessions = set[int]().union(*alone)
    assert set[int]().union(*after) == flood_sessions  # in turn: none of the three is left behind
    reference = GreedyReference(tiny_model)
    try:
        for prompt, tokens in outputs.items():
            assert len(tokens) == 300
            reference.check(prompt, tokens)
    finally:
        reference.close()
