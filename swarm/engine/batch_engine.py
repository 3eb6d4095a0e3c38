"""BatchEngine: continuous batching; every active sequence advances in one llama_decode per step.

All llama.cpp calls happen on the engine's own thread. Requests join between steps,
finished or cancelled ones leave at once, and a long prompt is prefilled in chunks
so that running streams wait at most one chunk. A tenant's first request, while other tenants' run,
cuts the whole model's step under way short (llama.cpp's abort callback) and prefills in steps of
its own, so a flood of one tenant delays it by little more than a graph node; while a tenant seen
lately runs nothing, steps carry fewer decode rows, so that node (the output head) is shorter.
A pipeline's Forward takes several steps in flight (steps_in_flight): each step carries the
sequences not waiting for a token, about an equal share of them, so while the last stage computes
one group the first computes the next.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from swarm.engine.engine_inbox import Cancel, InboxItem, SetLoaded, SetThreads, Submit
from swarm.engine.engine_meter import EngineMeter, EngineStats
from swarm.engine.first_token_pause import FirstTokenPause
from swarm.engine.forward import Forward, Interruptible, WholeModel
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.recent_tenants import RecentTenants, decode_row_cap
from swarm.engine.sequence import EmitFn, Sequence, Slot, choose_slot, first_of_its_tenant
from swarm.engine.speculation import PromptLookup, SpeculationBudget
from swarm.engine.speculation.budget import WorkerAcceptance
from swarm.engine.speculation.draft_feed import DraftFeed
from swarm.engine.steps_in_flight import StepsInFlight
from swarm.engine.text_stream import TextStream
from swarm.shared import tracing
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.stage_messages import Sampled
from swarm.shared.types import Finished, FinishReason, GenerationRequest, TextPiece, TokenLogprob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    slots: int = 8
    context_per_slot: int = 2048
    batch_size: int = 512  # tokens per llama_decode at most
    prefill_chunk: int = 128  # prompt tokens per step while other sequences are decoding
    threads: int = 2
    idle_priority: bool = False  # `--when idle`: decode under SCHED_IDLE, so any process of the owner's goes first
    # Verify prompt-lookup proposals (a whole model or a pipeline; a request may opt out). Off until measured never
    # slower on a quiet machine: see docs/benchmarks.md, "Speculative decoding".
    speculate: bool = False
    speculation: SpeculationBudget = field(default_factory=SpeculationBudget)
    first_token_pause_s: float = 0.005  # see first_token_pause; 0 turns it off

    def __post_init__(self) -> None:
        for name in ("slots", "context_per_slot", "batch_size", "prefill_chunk", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.first_token_pause_s <= 0.1:
            raise ValueError("first_token_pause_s must be between 0 and 0.1 seconds")
        if self.batch_size < self.slots:
            raise ValueError("batch_size must be at least slots (one decode token per slot)")


class BatchEngine:
    def __init__(
        self, model: LlamaModel, config: EngineConfig, forward: Forward | None = None, drafts: DraftFeed | None = None
    ) -> None:
        """model tokenizes and detokenizes; forward (default: the whole model here) computes the steps; drafts
        (a draft PC, when one is paired) proposes tokens to verify, with or without config.speculate."""
        self.model = model
        self.config = config
        self.drafts = drafts
        self._drafted = 0  # sequences named to the draft so far: each gets a name of its own
        self.can_unload = forward is None  # a pipeline head's stages keep theirs: it keeps its own too
        self._loaded = True
        self.threads = config.threads  # the whole model's now: fewer while its owner uses some of its cores
        self.meter = EngineMeter()
        self.acceptance = WorkerAcceptance()  # a new sequence's proposals start from how the last ones fared
        self._forward = forward or self._whole_model()
        self._in_flight = self._steps_through(self._forward)
        self.context_per_slot = self._forward.context_per_slot
        self._slots = [Slot(i) for i in range(config.slots)]
        self._inbox: queue.SimpleQueue[InboxItem] = queue.SimpleQueue()
        self._waiting: deque[Sequence] = deque()
        self._pause = FirstTokenPause(config.first_token_pause_s)  # lets a first token's hops have the cores
        self._cores = len(os.sched_getaffinity(0))
        self._recent = RecentTenants()  # while one of them runs nothing here, steps carry fewer decode rows
        self._tenants: frozenset[str] = frozenset()  # of the sequences in slots; set on the engine thread, read on any
        self._running = False
        self._thread = threading.Thread(target=self._loop, name="swarm-engine", daemon=True)
        # Called on the engine thread after each round of work, once that round's events are emitted:
        # a server sends a round's tokens for every sequence together.
        self.round_listener: Callable[[], None] = _nothing

    # ------------------------------------------------------------ any thread

    def start(self) -> None:
        self._running = True
        self._thread.start()

    def stop(self) -> None:
        """Cancels whatever runs, stops the thread and frees llama.cpp's memory."""
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join()
        if self._loaded:  # an unloaded engine freed it already
            self._forward.close()

    def submit(self, request: GenerationRequest, emit: EmitFn) -> None:
        """Queues a request; if it is its tenant's first here while another tenant's run and a slot is free,
        the step under way is cut short (a whole model's), so it starts now instead of a step later."""
        self._inbox.put(Submit(request, emit, tracing.current_context(), time.time_ns()))
        forward = self._forward
        if (
            isinstance(forward, Interruptible)
            and first_of_its_tenant(self._tenants, request.tenant)
            and any(slot.sequence is None for slot in self._slots)
        ):
            forward.interrupt()

    def cancel(self, request_id: str) -> None:
        self._inbox.put(Cancel(request_id))

    def set_loaded(self, loaded: bool) -> Future[None]:
        """Frees the llama.cpp context and weights (False) or loads them again (True), after what the inbox
        holds; done once it has. Unloaded, it cancels what runs and refuses new requests (can_unload only)."""
        done: Future[None] = Future()
        self._inbox.put(SetLoaded(loaded, done))
        return done

    def set_threads(self, threads: int) -> Future[None]:
        """The whole model's steps run on this many threads from the next one (a pipeline head keeps its own)."""
        done: Future[None] = Future()
        self._inbox.put(SetThreads(threads, done))
        return done

    def stats(self) -> EngineStats:
        busy = sum(1 for s in self._slots if s.sequence is not None)
        return self.meter.stats(busy, len(self._waiting))

    # ------------------------------------------------------------ engine thread

    def _active(self) -> list[Sequence]:
        return [s.sequence for s in self._slots if s.sequence is not None]

    def _loop(self) -> None:
        if self.config.idle_priority:  # before the first decode: the threads llama.cpp starts from here inherit it
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        while self._running:
            self.round_listener()  # the last round's events go out before this one's work (or wait)
            idle = not self._active() and not self._waiting and not self._in_flight
            if idle or self.threads < self._cores:  # the cores are free: nothing to pause for
                self._pause.skip()
            pause = self._pause.take()
            self.meter.first_token_pauses += pause > 0
            self._drain_inbox(wait_s=0.5 if idle else pause)
            try:
                self._admit_waiting()
            except Exception as exc:  # e.g. a sampler llama.cpp refused: fail that request, not the worker
                log.exception("could not start a request")
                self._waiting.popleft().emit(SwarmError(ErrorCode.INTERNAL, f"could not start the request: {exc}"))
                continue
            if not self._active() and not self._in_flight:
                continue
            started = time.monotonic()
            try:
                cap = decode_row_cap(self.config.slots, self._recent.one_may_return(self._tenants, started))
                if len(self._in_flight) >= self._forward.max_in_flight or not self._in_flight.send(self._slots, cap):
                    self._in_flight.receive(self._accept)
            except Exception as exc:  # a failed decode must not kill the worker: fail its sequences
                log.exception("engine step failed")
                self._in_flight.clear()
                self._forward.discard()
                for slot in self._slots:
                    if slot.sequence is not None:
                        slot.sequence.emit(SwarmError(ErrorCode.INTERNAL, f"engine step failed: {exc}"))
                        self._release(slot, keep_cache=False)
            self.meter.step_seconds += time.monotonic() - started
        for slot in self._slots:
            if slot.sequence is not None:
                self._finish(slot, FinishReason.CANCELLED)
        for sequence in self._waiting:
            sequence.emit(SwarmError(ErrorCode.UNAVAILABLE, "worker is shutting down"))
        self.round_listener()

    def _drain_inbox(self, wait_s: float) -> None:
        """Takes what the inbox holds, waiting up to wait_s for the first item (0: not at all)."""
        try:
            item = self._inbox.get(timeout=wait_s) if wait_s > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            if item is None:
                self._running = False
            elif isinstance(item, SetLoaded):
                self._set_loaded(item)
            elif isinstance(item, SetThreads):
                self._set_threads(item)
            elif isinstance(item, Submit) and not self._loaded:
                item.emit(SwarmError(ErrorCode.UNAVAILABLE, "the worker unloaded its model: memory is short"))
            elif isinstance(item, Submit):
                sequence = Sequence(item.request, item.emit, TextStream(item.request.stop))
                sequence.trace, sequence.submitted_ns = item.trace, item.submitted_ns
                self._waiting.append(sequence)
            else:
                self._cancel(item.request_id)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _steps_through(self, forward: Forward) -> StepsInFlight:
        """The steps to send through forward: a new one's, when the engine starts or loads its model again."""
        config = self.config
        mailbox = self.drafts.mailbox if self.drafts is not None else None
        return StepsInFlight(
            forward, self.meter, config.prefill_chunk, config.speculate, config.speculation, self.acceptance, mailbox
        )

    def _whole_model(self) -> WholeModel:
        # A sequence longer than the model was trained on degrades; never offer more than that.
        per_slot = min(self.config.context_per_slot, self.model.context_length_trained or self.config.context_per_slot)
        return WholeModel(self.model, self.config.slots, per_slot, self.config.batch_size, self.threads)

    def _set_threads(self, item: SetThreads) -> None:
        if self.can_unload:  # a whole model; unloaded, it takes them when it loads again
            if self._loaded and isinstance(self._forward, WholeModel):
                self._forward.set_threads(item.threads)
            self.threads = item.threads
        item.done.set_result(None)

    def _set_loaded(self, item: SetLoaded) -> None:
        try:
            if not self.can_unload:
                raise RuntimeError("a pipeline stage keeps its model loaded")
            if item.loaded and not self._loaded:
                self.model.load()
                self._forward = self._whole_model()
                self._in_flight = self._steps_through(self._forward)
                self._loaded = True
            elif not item.loaded and self._loaded:
                for sequence in self._waiting:
                    sequence.emit(SwarmError(ErrorCode.UNAVAILABLE, "the worker unloaded its model: memory is short"))
                self._waiting.clear()
                self._in_flight.clear()
                self._forward.discard()
                for slot in self._slots:
                    if slot.sequence is not None:
                        self._finish(slot, FinishReason.CANCELLED)
                    slot.cached = []
                self._forward.close()
                self.model.close()
                self._loaded = False
        except Exception as exc:  # reported to the caller, who keeps the worker away
            item.done.set_exception(exc)
        else:
            item.done.set_result(None)

    def _cancel(self, request_id: str) -> None:
        for sequence in list(self._waiting):
            if sequence.request.request_id == request_id:
                self._waiting.remove(sequence)
                sequence.emit(Finished(FinishReason.CANCELLED, 0, 0))
        for slot in self._slots:
            if slot.sequence is not None and slot.sequence.request.request_id == request_id:
                self._finish(slot, FinishReason.CANCELLED)

    def _admit_waiting(self) -> None:
        while self._waiting:
            sequence = self._waiting[0]
            if not sequence.prompt:
                ended = self._prepare(sequence)
                if ended is not None:
                    self._waiting.popleft()
                    sequence.emit(ended)
                    continue
            choice = choose_slot(self._slots, sequence.prompt)
            if choice is None:
                return
            slot, keep = choice
            trace = tracing.traceparent(sequence.trace) if sequence.trace is not None else ""
            resumed = len(sequence.request.resume_tokens)
            keep = self._forward.open(slot.seq_id, sequence.request.sampling, sequence.prompt, keep, trace, resumed)
            self._waiting.popleft()
            sequence.prefill_alone = first_of_its_tenant(self._tenants, sequence.request.tenant)
            slot.cached = sequence.prompt[:keep]
            slot.sequence = sequence
            self._tenants = self._tenants | {sequence.request.tenant}
            self._recent.saw(sequence.request.tenant, time.monotonic())
            # A greedy failover's resume tokens are replayed one per step, as they were first decoded, so
            # it goes on bit-identically (a batched prefill rounds differently). A sampled stream goes on
            # differently from an unfailed run anyway (its sampler starts afresh), so its resume tokens are
            # prefilled with the prompt: replayed one per step, a long answer's took longer on a busy swarm
            # than its workers lived, and three workers in a row died before it made a new token.
            replay_from = (
                max(keep, sequence.prompt_tokens) if sequence.request.sampling.greedy else len(sequence.prompt)
            )
            sequence.pending = sequence.prompt[keep:replay_from]
            sequence.replay = sequence.prompt[replay_from:]
            sequence.position = keep
            sequence.cached_prompt_tokens = keep
            drafts = self.drafts if self.drafts is not None and self.drafts.paired else None
            if (
                (self.config.speculate or drafts is not None)
                and self._in_flight.verifies
                and sequence.request.speculate
                and not sequence.request.sampling.grammar
            ):
                sequence.lookup = PromptLookup(sequence.prompt)
                sequence.acceptance = self.acceptance.new_sequence()
                if drafts is not None:
                    self._drafted += 1
                    sequence.draft_key = f"{sequence.request.request_id}#{self._drafted}"
                    drafts.extend(sequence.draft_key, 0, sequence.prompt)
            self.meter.admitted(len(sequence.prompt), keep)
            sequence.admitted_ns = time.time_ns()
            tracing.past_span("worker.wait_for_slot", sequence.trace, sequence.submitted_ns, sequence.admitted_ns)

    def _prepare(self, sequence: Sequence) -> SwarmError | Finished | None:
        """Tokenizes the prompt; a failover's resume tokens follow it and replay through the text stream,
        so only text after what the client already got is emitted. Returns how the request ended already
        (bad input, or a failover after its last token), or None."""
        resume = list(sequence.request.resume_tokens)
        bad = [t for t in resume if not 0 <= t < self.model.vocab_size]
        if bad:
            return SwarmError(ErrorCode.INVALID_ARGUMENT, f"resume_tokens: {bad[0]} is not a token of this model")
        prompt = self.model.tokenize(sequence.request.prompt)
        sequence.prompt_tokens = len(prompt)
        sequence.prompt = prompt + resume
        if len(sequence.prompt) >= self.context_per_slot:
            return SwarmError(
                ErrorCode.INVALID_ARGUMENT,
                f"prompt: {len(sequence.prompt)} tokens do not fit the context of "
                f"{self.context_per_slot} tokens per sequence",
            )
        sequence.generated = len(resume)
        for token in resume:
            if sequence.text.feed(token, self.model.token_bytes(token)).stopped:
                return Finished(FinishReason.STOP, len(prompt), sequence.generated)
        if sequence.generated >= sequence.request.max_tokens:
            return Finished(FinishReason.LENGTH, len(prompt), sequence.generated)
        return None

    def _accept(self, slot: Slot, sequence: Sequence, sampled: Sampled) -> None:
        token = sampled.token
        sequence.generated += 1
        first = sequence.generated == len(sequence.request.resume_tokens) + 1
        if first:
            self._pause.note_first_token()
        if sequence.trace is not None and first:
            tracing.past_span(
                "worker.prefill_to_first_token",
                sequence.trace,
                sequence.admitted_ns,
                prompt_tokens=len(sequence.prompt),
                cached_prompt_tokens=sequence.cached_prompt_tokens,
            )
        if self.model.is_end_of_generation(token):
            self._finish(slot, FinishReason.STOP)
            return
        if sampled.logprob is not None:
            sequence.logprobs.append(self._with_texts(sampled.logprob))
        release = sequence.text.feed(token, self.model.token_bytes(token))
        if release.text or release.token_ids:
            sequence.emit(TextPiece(release.text, release.token_ids, sequence.take_logprobs(len(release.token_ids))))
        if release.stopped:
            self._finish(slot, FinishReason.STOP, flush=False)
        elif sequence.generated >= sequence.request.max_tokens or sequence.position >= self.context_per_slot:
            self._finish(slot, FinishReason.LENGTH)
        else:
            sequence.next_token = token
            if sequence.lookup is not None:
                sequence.lookup.extend((token,))
                if sequence.draft_key and self.drafts is not None:
                    self.drafts.extend(sequence.draft_key, len(sequence.lookup) - 1, (token,))

    def _finish(self, slot: Slot, reason: FinishReason, flush: bool = True) -> None:
        sequence = slot.sequence
        assert sequence is not None  # only occupied slots finish
        if flush:
            tail = sequence.text.flush()
            if tail.text:
                sequence.emit(TextPiece(tail.text, tail.token_ids, sequence.take_logprobs(len(tail.token_ids))))
        sequence.emit(
            Finished(
                reason,
                sequence.prompt_tokens,
                sequence.generated,
                cached_prompt_tokens=sequence.cached_prompt_tokens,
                proposed_tokens=sequence.acceptance.proposed,
                accepted_tokens=sequence.acceptance.accepted,
            )
        )
        self._release(slot, keep_cache=True)

    def _with_texts(self, logprob: TokenLogprob) -> TokenLogprob:
        """The log-probabilities with each token's bytes, which only a holder of the vocabulary can give."""
        top = tuple(replace(t, text=self.model.token_bytes(t.token)) for t in logprob.top)
        return replace(logprob, text=self.model.token_bytes(logprob.token), top=top)

    def _release(self, slot: Slot, keep_cache: bool) -> None:
        sequence = slot.sequence
        if sequence is not None and sequence.proposal_in_flight:
            # Its step removes the rejected part of the proposal before this slot is reused: cached claims none of it.
            del slot.cached[len(slot.cached) - sequence.proposal_in_flight :]
        self._forward.release(slot.seq_id, keep_cache)
        if sequence is not None and sequence.draft_key and self.drafts is not None:
            self.drafts.end(sequence.draft_key)
            self.drafts.mailbox.forget(sequence.draft_key)
        slot.sequence = None
        if sequence is not None:
            self._recent.saw(sequence.request.tenant, time.monotonic())
        self._tenants = frozenset(s.request.tenant for s in self._active())
        slot.last_used = self.meter.steps
        if not keep_cache:
            slot.cached = []


def _nothing() -> None:
    pass
