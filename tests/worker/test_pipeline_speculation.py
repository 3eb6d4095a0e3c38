"""Speculation through a gRPC pipeline: proposals travel through the stages in the step of the token before
them, the greedy tokens equal the whole model's, and the rows a verification rejects leave every stage's cache.

The synthetic models' greedy choices win by whole units, so a sequence decoding alone must give exactly the
whole model's tokens, though its proposals make steps of several rows that round differently.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.forward import Forward
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.speculation import SpeculationBudget
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import wait_until
from swarm.shared.errors import SwarmError
from swarm.shared.stage_messages import PipelineStep, StageResult, StageWork
from swarm.shared.types import Finished, FinishReason, GenerationEvent, GenerationRequest, SamplingParams
from swarm.worker.pipeline_head import PipelineHead
from tests.greedy_check import GreedyReference
from tests.worker.test_pipeline import StageServers, start_head

# Prompts that repeat themselves, so proposals are made, accepted and refused.
PROMPTS = [
    "a b c d a b c d a b c",
    "the cat sat on the mat. the cat sat on the",
    "1 2 3 4 5 1 2 3 4 5 1 2 3",
    "def f(x): return x + 1\ndef g(x): return x + 1\ndef h(x): return",
    "red green blue red green blue red",
    "to be or not to be, to be or not",
]
MAX_TOKENS = 48
GREEDY = SamplingParams(temperature=0.0)
# Proposes whenever the context has a proposal, whatever the steps measured on a busy machine say they cost.
EAGER = SpeculationBudget.eager()
CONTEXT = 256


@dataclass(frozen=True)
class Result:
    tokens: list[int]
    text: str
    finished: Finished


class Stream:
    """One greedy request's events, received from the engine thread."""

    def __init__(
        self,
        engine: BatchEngine,
        prompt: str,
        request_id: str = "r",
        resume: tuple[int, ...] = (),
        sampling: SamplingParams = GREEDY,
    ) -> None:
        self._events: queue.SimpleQueue[GenerationEvent | SwarmError] = queue.SimpleQueue()
        request = GenerationRequest(request_id, "tiny", prompt, MAX_TOKENS, sampling, resume_tokens=resume)
        engine.submit(request, self._events.put)
        self.tokens: list[int] = []  # received so far
        self.text = ""

    def result(self) -> Result:
        while True:
            event = self._events.get(timeout=30)
            if isinstance(event, SwarmError):
                raise event
            if isinstance(event, Finished):
                return Result(self.tokens, self.text, event)
            self.tokens += event.token_ids
            self.text += event.text


def generate(engine: BatchEngine, prompt: str) -> Result:
    return Stream(engine, prompt).result()


class Setup:
    """A speculating pipeline head with its stage servers, and the whole model without speculation."""

    def __init__(self, model: Path, stages: int, directory: Path, slots: int = 1) -> None:
        manifest = split_model(model, stages, directory)
        self.servers = StageServers(directory, manifest, slots=slots, context_per_slot=CONTEXT)
        self.head = start_head(
            directory, manifest, self.servers, slots=slots, context_per_slot=CONTEXT, speculate=True, speculation=EAGER
        )
        self.whole = BatchEngine(LlamaModel(model), EngineConfig(slots=1, context_per_slot=CONTEXT, threads=1))
        self.whole.start()

    def both(self, prompt: str) -> tuple[Result, Result]:
        """The pipeline's result, then the whole model's."""
        return generate(self.head, prompt), generate(self.whole, prompt)

    def cached_positions(self, slot: int = 0) -> list[int]:
        """How many positions the head's slot covers on each stage, first to last (once idle)."""
        wait_until(lambda: self.head.stats().slots_busy == 0, 10, "the head to go idle")
        forward = self.head._forward
        assert isinstance(forward, PipelineHead)
        return [forward._executor.cached_positions(slot)] + [
            executor.cached_positions(local_session(self.servers, i, slot))
            for i, executor in enumerate(self.servers.executors)
        ]

    def recorded(self, slot: int = 0) -> int:
        """How many cached tokens the head's record of its slot claims."""
        return len(self.head._slots[slot].cached)

    def close(self) -> None:
        self.head.stop()
        self.servers.stop()
        self.whole.stop()
        self.whole.model.close()


def local_session(servers: StageServers, stage: int, session: int) -> int:
    """The stage's own sequence id of a session of the head (each stage numbers the sessions it serves)."""
    table = servers._servicers[stage]._sessions
    (local,) = [local for (_, upstream), local in table._local.items() if upstream == session]
    return local


def model_of(stages: int, tiny_model: Path, directory: Path) -> Path:
    """A synthetic model of as many layers as stages: its greedy choices win by whole units."""
    return tiny_model if stages == 2 else write_tiny_llama(directory / "three.gguf", seed=0, n_layer=3)


@pytest.fixture(params=[2, 3], ids=["2-stages", "3-stages"])
def setup(request: pytest.FixtureRequest, tiny_model: Path, tmp_path: Path) -> Iterator[Setup]:
    built = Setup(model_of(request.param, tiny_model, tmp_path), request.param, tmp_path)
    yield built
    built.close()


def test_speculating_stages_give_the_whole_models_greedy_tokens(setup: Setup) -> None:
    proposed = accepted = 0
    for prompt in PROMPTS:
        piped, whole = setup.both(prompt)
        assert (piped.tokens, piped.text) == (whole.tokens, whole.text), prompt
        assert piped.finished.completion_tokens == whole.finished.completion_tokens == MAX_TOKENS
        assert 0 <= piped.finished.accepted_tokens <= piped.finished.proposed_tokens
        proposed += piped.finished.proposed_tokens
        accepted += piped.finished.accepted_tokens
    assert accepted > 0  # several tokens came back from one trip through the stages...
    assert accepted < proposed  # ...and some proposals were refused: the rollback ran
    stats = setup.head.stats()
    assert stats.steps < stats.tokens_generated + len(PROMPTS)  # fewer trips than tokens and prompts


def test_a_rejected_proposal_leaves_no_trace_in_any_stages_cache(setup: Setup) -> None:
    prompt = PROMPTS[1]
    piped, _ = setup.both(prompt)
    assert piped.finished.accepted_tokens < piped.finished.proposed_tokens  # some rows were rolled back
    held = setup.cached_positions()
    # The head and the last stage dropped the rejected rows when the verification came back; a middle stage
    # drops them before the session's next rows, or cuts them off when the slot opens again, as below.
    assert held[0] == held[-1] == setup.recorded()
    assert all(middle >= setup.recorded() for middle in held[1:-1])
    # A prompt that goes on from the answer reuses the cached prefix, which holds only decided tokens on every
    # stage: it decodes on exactly as the whole model does from scratch.
    again, whole = setup.both(prompt + piped.text)
    assert again.finished.cached_prompt_tokens > 0
    assert again.finished.cached_prompt_tokens <= piped.finished.prompt_tokens + MAX_TOKENS - 1
    assert (again.tokens, again.text) == (whole.tokens, whole.text)
    assert again.finished.proposed_tokens > again.finished.accepted_tokens
    held = setup.cached_positions()
    assert held[0] == held[-1] == setup.recorded()


def test_a_stream_cancelled_with_a_proposal_in_flight_leaves_its_slot_clean(tiny_model: Path, tmp_path: Path) -> None:
    manifest = split_model(tiny_model, 2, tmp_path)
    servers = StageServers(tmp_path, manifest, slots=1, context_per_slot=CONTEXT)
    prompt = PROMPTS[0]
    follower: list[Stream] = []

    def cancel_on_proposal(head: Forward) -> Forward:
        assert isinstance(head, PipelineHead)
        send = head.send

        def send_then_cancel(work: list[StageWork], proposed: Sequence[int] = ()) -> None:
            send(work, proposed)
            if any(proposed) and not follower:
                # Both drained before this step's tokens are received: the slot opens again meanwhile.
                engine.cancel("doomed")
                follower.append(Stream(engine, prompt, "next"))

        head.send = send_then_cancel  # type: ignore[method-assign]
        return head

    engine = start_head(
        tmp_path,
        manifest,
        servers,
        slots=1,
        context_per_slot=CONTEXT,
        speculate=True,
        speculation=EAGER,
        wrap=cancel_on_proposal,
    )
    whole = BatchEngine(LlamaModel(tiny_model), EngineConfig(slots=1, context_per_slot=CONTEXT, threads=1))
    whole.start()
    try:
        doomed = Stream(engine, prompt, "doomed").result()
        assert follower and doomed.finished.reason == FinishReason.CANCELLED
        # The next stream keeps the prompt cached and decodes on as the whole model does.
        again, plain = follower[0].result(), generate(whole, prompt)
        assert again.finished.cached_prompt_tokens == again.finished.prompt_tokens - 1
        assert (again.tokens, again.text) == (plain.tokens, plain.text)
        assert again.finished.accepted_tokens > 0
    finally:
        engine.stop()
        servers.stop()
        whole.stop()
        whole.model.close()


def test_a_stage_failing_with_a_proposal_in_flight_lets_the_stream_resume_unchanged(
    tiny_model: Path, tmp_path: Path
) -> None:
    setup = Setup(tiny_model, 2, tmp_path)
    try:
        prompt = PROMPTS[1]
        unfailed = generate(setup.head, prompt)
        last = setup.servers.executors[-1]
        apply = last.apply
        failed: list[PipelineStep] = []

        def fail_once(step: PipelineStep) -> list[StageResult]:
            if not failed and any(w.proposal for w in step.work):
                failed.append(step)
                raise RuntimeError("the last stage failed")
            return apply(step)

        last.apply = fail_once  # type: ignore[method-assign]
        broken = Stream(setup.head, prompt, "broken")
        with pytest.raises(SwarmError):
            broken.result()
        assert failed and len(broken.tokens) < MAX_TOKENS
        # As the coordinator resumes a failed stream: the tokens the client got follow the prompt, over a new
        # stream to the stages (their caches of the old one are gone), and speculation goes on.
        resumed = Stream(setup.head, prompt, "resumed", resume=tuple(broken.tokens)).result()
        assert broken.tokens + resumed.tokens == unfailed.tokens
        assert broken.text + resumed.text == unfailed.text
        assert resumed.finished.accepted_tokens > 0
        held = setup.cached_positions()
        assert held[0] == held[-1] == setup.recorded()
    finally:
        setup.close()


def test_seeded_sampling_through_speculating_stages_draws_the_whole_models_tokens(setup: Setup) -> None:
    accepted = 0
    for seed, prompt in enumerate(PROMPTS):
        sampling = SamplingParams(temperature=0.5, seed=seed)
        piped = Stream(setup.head, prompt, sampling=sampling).result()
        whole = Stream(setup.whole, prompt, sampling=sampling).result()
        # The last stage draws once per decided token with the sequence's own sampler, as without a proposal.
        assert (piped.tokens, piped.text) == (whole.tokens, whole.text), prompt
        accepted += piped.finished.accepted_tokens
    assert accepted > 0


@pytest.mark.parametrize("stages", [2, 3])
def test_concurrent_speculating_streams_in_overlapping_steps_keep_greedy_text_and_clean_caches(
    stages: int, tiny_model: Path, tmp_path: Path
) -> None:
    model = model_of(stages, tiny_model, tmp_path)
    prompts = [*PROMPTS, "Hello world", "Once upon a time"]
    setup = Setup(model, stages, tmp_path, slots=len(prompts))
    reference = GreedyReference(model, n_ctx=CONTEXT)
    try:
        # One step per stage in flight, each carrying a group of streams: a stream's rollback rides on its next
        # rows, which may come several steps later, after other groups' steps.
        streams = [Stream(setup.head, prompt, f"r{i}") for i, prompt in enumerate(prompts)]
        results = [stream.result() for stream in streams]
        for prompt, result in zip(prompts, results, strict=True):
            assert len(result.tokens) == MAX_TOKENS
            reference.check(prompt, result.tokens)  # batched: greedy up to rounding ties, never another's rows
        assert sum(r.finished.accepted_tokens for r in results) > 0
        assert sum(r.finished.proposed_tokens - r.finished.accepted_tokens for r in results) > 0
        for slot in range(len(prompts)):
            held = setup.cached_positions(slot)
            assert held[0] == held[-1] == setup.recorded(slot), slot
            assert all(middle >= setup.recorded(slot) for middle in held[1:-1]), slot
    finally:
        reference.close()
        setup.close()
