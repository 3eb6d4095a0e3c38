"""BatchEngine on a real (tiny) llama.cpp model: exact greedy text, isolation, cancellation, prefix reuse."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.forward import WholeModel
from swarm.engine.llama_adapter import LlamaModel, ModelLoadError
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.stage_messages import Sampled, StageWork
from swarm.shared.types import Finished, FinishReason, GenerationEvent, GenerationRequest, SamplingParams, TextPiece
from tests.greedy_check import GreedyReference

PROMPTS = [
    "Hello world",
    "The quick brown fox",
    "Once upon a time",
    "what is the time",
    "a b c d e f",
    "the sea and the sky",
    "good morning to you",
    "numbers 1 2 3",
]
GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Iterator[BatchEngine]:
    engine = BatchEngine(LlamaModel(tiny_model), EngineConfig(slots=8, context_per_slot=256, threads=2))
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def reference(tiny_model: Path) -> Iterator[llama_cpp.Llama]:
    llm = llama_cpp.Llama(str(tiny_model), n_ctx=256, n_threads=2, verbose=False)
    yield llm
    llm.close()


class Collector:
    """Receives one request's events from the engine thread."""

    def __init__(self) -> None:
        self.events: queue.SimpleQueue[GenerationEvent | SwarmError] = queue.SimpleQueue()

    def __call__(self, event: GenerationEvent | SwarmError) -> None:
        self.events.put(event)

    def next(self, timeout_s: float = 30) -> GenerationEvent | SwarmError:
        return self.events.get(timeout=timeout_s)

    def result(self, timeout_s: float = 30) -> tuple[str, Finished]:
        text = ""
        while True:
            event = self.next(timeout_s)
            if isinstance(event, SwarmError):
                raise event
            if isinstance(event, Finished):
                return text, event
            text += event.text

    def tokens(self, timeout_s: float = 30) -> list[int]:
        """The token ids of the whole generation."""
        ids: list[int] = []
        while True:
            event = self.next(timeout_s)
            if isinstance(event, SwarmError):
                raise event
            if isinstance(event, Finished):
                return ids
            ids += event.token_ids


def request(prompt: str, max_tokens: int = 24, rid: str = "", **sampling: float) -> GenerationRequest:
    params = SamplingParams(**sampling) if sampling else GREEDY
    return GenerationRequest(rid or prompt, "tiny", prompt, max_tokens, params)


def run(engine: BatchEngine, req: GenerationRequest) -> tuple[str, Finished]:
    collector = Collector()
    engine.submit(req, collector)
    return collector.result()


def test_greedy_text_equals_llama_cpp_python(engine: BatchEngine, reference: llama_cpp.Llama) -> None:
    for prompt in PROMPTS[:3]:
        expected = reference.create_completion(prompt, max_tokens=24, temperature=0.0)
        text, finished = run(engine, request(prompt))
        assert text == expected["choices"][0]["text"]
        assert finished.completion_tokens == expected["usage"]["completion_tokens"]
        assert finished.prompt_tokens == expected["usage"]["prompt_tokens"]


def test_eight_concurrent_sequences_do_not_bleed(engine: BatchEngine, tiny_model: Path) -> None:
    collectors = {p: Collector() for p in PROMPTS}
    for p in PROMPTS:
        engine.submit(request(p, rid=f"together-{p}"), collectors[p])
    reference = GreedyReference(tiny_model, n_ctx=256)
    for p in PROMPTS:
        tokens = collectors[p].tokens()
        assert len(tokens) == 24
        reference.check(p, tokens)  # decoded beside seven others: greedy up to rounding ties, never another's text
    reference.close()


def test_stop_string_and_max_tokens_end_precisely(engine: BatchEngine) -> None:
    full, _ = run(engine, request("Hello world", max_tokens=24))
    stop = full[10:14]
    text, finished = run(engine, GenerationRequest("stop", "tiny", "Hello world", 24, GREEDY, (stop,)))
    assert text == full[: full.index(stop)]
    assert finished.reason == FinishReason.STOP
    text, finished = run(engine, request("Hello world", max_tokens=5))
    assert finished.reason == FinishReason.LENGTH and finished.completion_tokens == 5
    assert full.startswith(text)


def test_seeded_sampling_is_reproducible(engine: BatchEngine) -> None:
    a = run(engine, request("Hello world", rid="s1", temperature=1.0, seed=7, top_p=0.9, top_k=40))[0]
    b = run(engine, request("Hello world", rid="s2", temperature=1.0, seed=7, top_p=0.9, top_k=40))[0]
    c = run(engine, request("Hello world", rid="s3", temperature=1.0, seed=8, top_p=0.9, top_k=40))[0]
    assert a == b
    assert a != c


def test_cancel_frees_the_slot_for_a_waiting_request(tiny_model: Path) -> None:
    engine = BatchEngine(LlamaModel(tiny_model), EngineConfig(slots=2, context_per_slot=256, threads=1))
    engine.start()
    try:
        long_runs = [Collector(), Collector()]
        for i, collector in enumerate(long_runs):
            engine.submit(request("Hello world", max_tokens=200, rid=f"long-{i}"), collector)
        for collector in long_runs:
            assert isinstance(collector.next(), TextPiece)  # both slots are now decoding
        third = Collector()
        engine.submit(request("The quick brown fox", max_tokens=4, rid="third"), third)
        engine.cancel("long-0")
        _, finished = third.result(timeout_s=10)
        assert finished.completion_tokens == 4
        events = []
        while not isinstance(events[-1] if events else None, Finished):
            events.append(long_runs[0].next())
        assert events[-1].reason == FinishReason.CANCELLED  # type: ignore[union-attr]
        engine.cancel("long-1")
    finally:
        engine.stop()


def test_second_turn_prefills_only_new_tokens(engine: BatchEngine) -> None:
    first_prompt = "good morning to you and the sea"
    first_text, first = run(engine, request(first_prompt, max_tokens=8, rid="turn-1"))
    second_prompt = first_prompt + first_text + " and then"
    _, second = run(engine, request(second_prompt, max_tokens=8, rid="turn-2"))
    assert first.cached_prompt_tokens == 0 or first.cached_prompt_tokens < first.prompt_tokens
    # Everything of turn one (its prompt and all but the last generated token) is reused.
    assert second.cached_prompt_tokens >= first.prompt_tokens + first.completion_tokens - 2
    assert second.prompt_tokens - second.cached_prompt_tokens <= 4


def test_prompt_longer_than_context_is_invalid(tiny_model: Path) -> None:
    engine = BatchEngine(LlamaModel(tiny_model), EngineConfig(slots=1, context_per_slot=32, threads=1))
    engine.start()
    try:
        collector = Collector()
        engine.submit(request("word " * (engine.context_per_slot + 5)), collector)
        error = collector.next()
        assert isinstance(error, SwarmError) and error.code == ErrorCode.INVALID_ARGUMENT
        assert "prompt" in error.message
    finally:
        engine.stop()


def test_missing_and_non_gguf_files_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        LlamaModel(tmp_path / "nope.gguf")
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model at all")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        LlamaModel(bogus)


def test_repetition_penalty_and_min_p_run_in_the_sampler_chain(engine: BatchEngine) -> None:
    plain = run(engine, request("the sea and the sky", max_tokens=32, rid="plain"))[0]
    penalised = run(
        engine, request("the sea and the sky", max_tokens=32, rid="pen1", temperature=0.0, repeat_penalty=3.0)
    )[0]
    again = run(engine, request("the sea and the sky", max_tokens=32, rid="pen2", temperature=0.0, repeat_penalty=3.0))[
        0
    ]
    assert penalised == again
    assert penalised != plain
    a = run(engine, request("Hello world", rid="minp1", temperature=1.0, seed=3, min_p=0.2))[0]
    b = run(engine, request("Hello world", rid="minp2", temperature=1.0, seed=3, min_p=0.2))[0]
    assert a == b


class RecordingForward:
    """The whole model, recording how many rows of each session every step that ran carried."""

    def __init__(self, inner: WholeModel) -> None:
        self.inner = inner
        self.steps: list[dict[int, int]] = []
        self.batch_capacity = inner.batch_capacity
        self.context_per_slot = inner.context_per_slot

    def open(
        self,
        slot: int,
        sampling: SamplingParams,
        prompt: list[int],
        keep: int,
        traceparent: str = "",
        generated: int = 0,
    ) -> int:
        return self.inner.open(slot, sampling, prompt, keep, traceparent, generated)

    @property
    def max_in_flight(self) -> int:
        return self.inner.max_in_flight

    def decode_groups(self, sessions: int) -> int:
        return self.inner.decode_groups(sessions)

    def send(self, work: list[StageWork]) -> None:
        self.inner.send(work)  # may be interrupted: then it never ran
        self.steps.append({w.session: w.rows for w in work})

    def interrupt(self) -> None:
        self.inner.interrupt()

    def receive(self) -> list[Sampled | None]:
        return self.inner.receive()

    def discard(self) -> None:
        self.inner.discard()

    def release(self, slot: int, keep_cache: bool) -> None:
        self.inner.release(slot, keep_cache)

    def close(self) -> None:
        self.inner.close()


def test_a_long_prompt_is_prefilled_in_chunks_between_decode_steps(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    config = EngineConfig(slots=2, context_per_slot=512, threads=1, prefill_chunk=32)
    recorder = RecordingForward(WholeModel(model, 2, 512, 512, 1))
    engine = BatchEngine(model, config, forward=recorder)
    engine.start()
    try:
        running = Collector()
        engine.submit(request("Hello world", max_tokens=200, rid="running"), running)
        assert isinstance(running.next(), TextPiece)  # it is decoding
        long_prompt = Collector()
        engine.submit(request("the sea and the sky " * 40, max_tokens=2, rid="long"), long_prompt)
        long_prompt.result()
        running.result()
    finally:
        engine.stop()
    long_slot_steps = [s for s in recorder.steps if len(s) == 2]  # steps that carried both sessions
    assert len(long_slot_steps) >= 4  # the prompt (160+ tokens) took several steps...
    for step in long_slot_steps:
        rows = sorted(step.values())
        assert rows[0] == 1  # ...the running stream got its token in each of them
        assert rows[1] <= config.prefill_chunk  # and no step carried more than one chunk of the prompt


def test_fewer_threads_from_the_next_step_give_the_same_greedy_text(tiny_model: Path) -> None:
    engine = BatchEngine(LlamaModel(tiny_model), EngineConfig(slots=2, context_per_slot=256, threads=2))
    engine.start()
    try:
        before, _ = run(engine, request(PROMPTS[0], max_tokens=16))
        engine.set_threads(1).result(timeout=30)
        assert engine.threads == 1
        assert isinstance(engine._forward, WholeModel) and engine._forward.threads == 1  # llama.cpp's own count
        assert run(engine, request(PROMPTS[0], max_tokens=16))[0] == before  # one sequence decoding alone: exact
        engine.set_loaded(False).result(timeout=30)
        engine.set_threads(2).result(timeout=30)  # unloaded: kept for the load
        engine.set_loaded(True).result(timeout=30)
        assert engine._forward.threads == 2
    finally:
        engine.stop()


def test_a_sampled_failover_prefills_its_resume_tokens_where_a_greedy_one_replays_them_one_per_step(
    tiny_model: Path,
) -> None:
    model = LlamaModel(tiny_model)
    recorder = RecordingForward(WholeModel(model, 2, 512, 512, 1))
    engine = BatchEngine(model, EngineConfig(slots=2, context_per_slot=512, threads=1), forward=recorder)
    engine.start()
    sampled = SamplingParams(temperature=0.9, seed=3)
    steps: dict[str, int] = {}
    try:
        collector = Collector()
        engine.submit(GenerationRequest("first", "tiny", PROMPTS[0], 60, sampled), collector)
        resume = tuple(collector.tokens())
        # Each arm on a prompt of its own, so neither finds the other's tokens cached; one new token each.
        for name, prompt, sampling in (("sampled", PROMPTS[1], sampled), ("greedy", PROMPTS[2], GREEDY)):
            recorder.steps.clear()
            req = GenerationRequest(name, "tiny", prompt, len(resume) + 1, sampling, resume_tokens=resume)
            _, finished = run(engine, req)
            assert finished.completion_tokens == len(resume) + 1
            steps[name] = len(recorder.steps)
    finally:
        engine.stop()
    assert len(resume) == 60
    assert steps["sampled"] <= 2  # the prompt and its 60 resume tokens in one prefill, then its one token
    assert steps["greedy"] >= len(resume)  # one per step, as first decoded: its text goes on bit-identically
