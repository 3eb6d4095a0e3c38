"""A pipeline with one step in flight per stage: groups of streams overlap, and every stream keeps its text.

Streams decode in shared batches, which round differently from a prompt decoded alone, and the
synthetic model has near ties (lock-step pipelines meet them too on these prompts), so the text
is checked as greedy up to a rounding tie (tests/greedy_check.py), not character for character.
"""

from __future__ import annotations

import math
import queue
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.forward import Forward
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.errors import SwarmError
from swarm.shared.stage_messages import Sampled, StageWork
from swarm.shared.types import Finished, FinishReason, GenerationEvent, GenerationRequest, SamplingParams, TextPiece
from tests.greedy_check import GreedyReference
from tests.worker.test_pipeline import StageServers, start_head

PROMPTS = [
    "Hello world",
    "The quick brown fox jumps over",
    "Once upon a time there",
    "good morning to you",
    "the sea and the sky",
    "one two three four five",
    "a cat sat on the mat",
    "rain falls in the valley",
]
MAX_TOKENS = 24


class WatchedForward:
    """Passes everything to a pipeline head, counting the steps in flight and who each step carried."""

    def __init__(self, inner: Forward) -> None:
        self.inner = inner
        self.batch_capacity = inner.batch_capacity
        self.context_per_slot = inner.context_per_slot
        self.max_in_flight = inner.max_in_flight
        self.in_flight = 0
        self.most_in_flight = 0
        self.decode_rows: list[int] = []  # per step: the sessions that fed one token and sampled
        self.prompts: dict[int, tuple[int, ...]] = {}  # slot -> the prompt last opened on it
        self.on_send: Callable[[list[StageWork]], None] = lambda work: None
        self.decode_groups = inner.decode_groups

    def open(
        self,
        slot: int,
        sampling: SamplingParams,
        prompt: list[int],
        keep: int,
        traceparent: str = "",
        generated: int = 0,
    ) -> int:
        self.prompts[slot] = tuple(prompt)
        return self.inner.open(slot, sampling, prompt, keep, traceparent, generated)

    def send(self, work: list[StageWork]) -> None:
        self.inner.send(work)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.decode_rows.append(sum(1 for w in work if w.rows == 1 and w.sample))
        self.on_send(work)

    def receive(self) -> list[Sampled | None]:
        tokens = self.inner.receive()
        self.in_flight -= 1
        return tokens

    def discard(self) -> None:
        self.in_flight = 0
        self.inner.discard()

    def release(self, slot: int, keep_cache: bool) -> None:
        self.inner.release(slot, keep_cache)

    def close(self) -> None:
        self.inner.close()


def watching(watched: list[WatchedForward]) -> Callable[[Forward], Forward]:
    def wrap(forward: Forward) -> Forward:
        watched.append(WatchedForward(forward))
        return watched[-1]

    return wrap


@pytest.fixture(scope="module")
def four_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("in-flight") / "four.gguf", seed=0, n_layer=4)


@pytest.fixture(scope="module")
def reference(four_layers: Path) -> Iterator[GreedyReference]:
    """The whole model, scoring a stream's tokens against its greedy choices."""
    scorer = GreedyReference(four_layers, n_ctx=256)
    yield scorer
    scorer.close()


class Streams:
    """Events of many requests to one engine, gathered per request id."""

    def __init__(self) -> None:
        self.events: queue.SimpleQueue[tuple[str, GenerationEvent | SwarmError]] = queue.SimpleQueue()
        self.tokens: dict[str, list[int]] = {}
        self.finished: dict[str, Finished] = {}
        self.after_finish: list[tuple[str, GenerationEvent | SwarmError]] = []  # must stay empty

    def emit_for(self, request_id: str) -> Callable[[GenerationEvent | SwarmError], None]:
        self.tokens[request_id] = []
        return lambda event: self.events.put((request_id, event))

    def until_finished(self, count: int) -> None:
        while len(self.finished) < count:
            request_id, event = self.events.get(timeout=30)
            if request_id in self.finished:
                self.after_finish.append((request_id, event))
                continue
            if isinstance(event, SwarmError):
                raise event
            if isinstance(event, TextPiece):
                self.tokens[request_id] += event.token_ids
            elif isinstance(event, Finished):
                self.finished[request_id] = event


def greedy(request_id: str, prompt: str, max_tokens: int) -> GenerationRequest:
    return GenerationRequest(request_id, "tiny", prompt, max_tokens, SamplingParams(temperature=0.0))


def run_every_prompt(engine: BatchEngine, servers: StageServers) -> Streams:
    """All of PROMPTS at once, greedy, to the end; then the engine and the stages stop."""
    streams = Streams()
    try:
        for prompt in PROMPTS:
            engine.submit(greedy(prompt, prompt, MAX_TOKENS), streams.emit_for(prompt))
        streams.until_finished(len(PROMPTS))
    finally:
        engine.stop()
        servers.stop()
    return streams


@pytest.mark.parametrize("stages", [2, 3])
def test_eight_streams_in_overlapping_groups_each_equal_the_whole_model_alone(
    stages: int, four_layers: Path, reference: GreedyReference, tmp_path: Path
) -> None:
    manifest = split_model(four_layers, stages, tmp_path)
    servers = StageServers(tmp_path, manifest, slots=len(PROMPTS))
    watched: list[WatchedForward] = []
    # Always a group per stage: on this model measured step times might choose lock-step instead.
    engine = start_head(tmp_path, manifest, servers, slots=len(PROMPTS), wrap=watching(watched), measured_groups=False)
    streams = run_every_prompt(engine, servers)
    for prompt in PROMPTS:
        assert len(streams.tokens[prompt]) == MAX_TOKENS
        reference.check(prompt, streams.tokens[prompt])
    head = watched[0]
    assert head.most_in_flight == stages  # every stage had a step to compute...
    assert max(head.decode_rows) <= math.ceil(len(PROMPTS) / stages)  # ...each carrying one group's share


def test_groups_in_flight_merge_into_one_step_when_the_choice_turns_to_lock_step(
    four_layers: Path, reference: GreedyReference, tmp_path: Path
) -> None:
    manifest = split_model(four_layers, 2, tmp_path)
    servers = StageServers(tmp_path, manifest, slots=len(PROMPTS))
    watched: list[WatchedForward] = []
    engine = start_head(tmp_path, manifest, servers, slots=len(PROMPTS), wrap=watching(watched))
    head = watched[0]
    switch_at = 8  # steps sent in two groups; then the choice (as measurements may make it) is one group
    head.decode_groups = lambda sessions: 2 if len(head.decode_rows) < switch_at else 1
    streams = run_every_prompt(engine, servers)
    for prompt in PROMPTS:
        reference.check(prompt, streams.tokens[prompt])
    assert max(head.decode_rows[:switch_at]) <= len(PROMPTS) // 2
    # Both groups came back before the next decode step, which then carried every stream.
    assert len(PROMPTS) in head.decode_rows[switch_at:]


def test_a_stream_cancelled_while_its_step_is_in_flight_gives_its_slot_to_the_next_request(
    four_layers: Path, reference: GreedyReference, tmp_path: Path
) -> None:
    manifest = split_model(four_layers, 2, tmp_path)
    servers = StageServers(tmp_path, manifest, slots=2)
    watched: list[WatchedForward] = []
    engine = start_head(tmp_path, manifest, servers, slots=2, wrap=watching(watched))
    head = watched[0]
    streams = Streams()
    cancelled_prompt = engine.model.tokenize(PROMPTS[0])
    cancelled_on: list[int] = []  # the slot of the stream cancelled while its step was in flight

    def cancel_once_in_flight(work: list[StageWork]) -> None:
        for w in work:
            if w.sample and head.prompts.get(w.session) == tuple(cancelled_prompt) and not cancelled_on:
                cancelled_on.append(w.session)
                engine.cancel("cancelled")  # handled before this step's tokens are received

    try:
        engine.submit(greedy("cancelled", PROMPTS[0], 100), streams.emit_for("cancelled"))
        engine.submit(greedy("beside", PROMPTS[1], 40), streams.emit_for("beside"))
        engine.submit(greedy("next", PROMPTS[2], MAX_TOKENS), streams.emit_for("next"))  # waits for a slot
        head.on_send = cancel_once_in_flight
        streams.until_finished(3)
    finally:
        engine.stop()
        servers.stop()
    assert cancelled_on, "the cancelled stream never had a step in flight"
    assert streams.finished["cancelled"].reason == FinishReason.CANCELLED
    assert not streams.after_finish  # its in-flight token was dropped, not sent after its end
    assert head.prompts[cancelled_on[0]] == tuple(engine.model.tokenize(PROMPTS[2]))  # "next" took its slot...
    assert len(streams.tokens["next"]) == MAX_TOKENS
    reference.check(PROMPTS[2], streams.tokens["next"])  # ...and got none of its in-flight tokens
    assert len(streams.tokens["beside"]) == 40
    reference.check(PROMPTS[1], streams.tokens["beside"])


def test_a_long_prompt_flows_through_the_stages_in_chunks_while_a_short_stream_keeps_its_tokens(
    tmp_path: Path,
) -> None:
    model = write_tiny_llama(tmp_path / "long.gguf", seed=0, n_layer=4, context_length=2048)
    manifest = split_model(model, 2, tmp_path)
    servers = StageServers(tmp_path, manifest, slots=2, context_per_slot=1024)
    watched: list[WatchedForward] = []
    engine = start_head(tmp_path, manifest, servers, slots=2, wrap=watching(watched), context_per_slot=1024)
    head = watched[0]
    long_prompt = " ".join(f"word{i % 50} and" for i in range(180))
    long_tokens = engine.model.tokenize(long_prompt)
    assert len(long_tokens) > 600
    chunks: list[int] = []  # rows of each step that carried the long prompt alone
    head.on_send = lambda work: (
        chunks.append(sum(w.rows for w in work)) if len(work) == 1 and work[0].rows > 1 else None
    )
    streams = Streams()
    try:
        # Alone, the long prompt goes in chunks of prefill_chunk, two in flight: both stages compute at once.
        engine.submit(greedy("long-alone", long_prompt, 4), streams.emit_for("long-alone"))
        streams.until_finished(1)
        alone_in_flight = head.most_in_flight
        # Beside a short stream that decodes, it goes in smaller chunks, and the stream's tokens keep coming.
        engine.submit(greedy("short", PROMPTS[1], 60), streams.emit_for("short"))
        while len(streams.tokens["short"]) < 2:
            request_id, event = streams.events.get(timeout=30)
            if isinstance(event, TextPiece):
                streams.tokens[request_id] += event.token_ids
        short_before = len(streams.tokens["short"])
        engine.submit(greedy("long", long_prompt, 4), streams.emit_for("long"))
        short_at_first_token = 0
        while "long" not in streams.finished or "short" not in streams.finished:
            request_id, event = streams.events.get(timeout=30)
            if isinstance(event, SwarmError):
                raise event
            if isinstance(event, TextPiece):
                if request_id == "long" and not streams.tokens["long"]:
                    short_at_first_token = len(streams.tokens["short"])
                streams.tokens[request_id] += event.token_ids
            elif isinstance(event, Finished):
                streams.finished[request_id] = event
    finally:
        engine.stop()
        servers.stop()
    chunk = EngineConfig().prefill_chunk
    assert head.batch_capacity > chunk  # a whole step would hold more: the chunks are the pipeline's choice
    assert chunks[: len(long_tokens) // chunk] == [chunk] * (len(long_tokens) // chunk)
    assert alone_in_flight == 2
    # The long prompt took several steps beside the short stream, whose tokens kept coming meanwhile: one in
    # every other step that carried it (in the others its token was in flight).
    assert short_at_first_token - short_before >= len(long_tokens) // (2 * chunk)
    scorer = GreedyReference(model, n_ctx=1024)
    try:
        scorer.check(long_prompt, streams.tokens["long-alone"])
        scorer.check(long_prompt, streams.tokens["long"])
        scorer.check(PROMPTS[1], streams.tokens["short"])
    finally:
        scorer.close()
