"""PipelineHead: the Forward of a pipeline's first stage; its layers here, the rest on the next PCs.

BatchEngine schedules the sessions as for a whole model; each step runs through this
stage's layers, its hidden states go to the next stage over one gRPC stream, and the
tokens the last stage sampled come back on it. Up to one step per stage is in flight:
every stage takes its steps in order, so while the later stages compute one step this
one computes the next. How many groups the decoding sessions are split into (one step
each) follows the stages' measured step times (decode_groups.py): lock-step where a
stage pays mostly per step, as Gemma 3's output head does.

A speculating session's step carries its next token and the proposal after it; the last
stage verifies the proposal and answers every token it decided, so one trip through the
stages yields up to k+1 tokens. The rows it rejected leave the last stage's cache at once,
this stage's when the tokens come back, and every other stage's just before the session's
next rows (which follow the steps in flight in order, as the session waits for its tokens).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any

import grpc

from swarm.engine.llama_adapter.model import StagePosition
from swarm.engine.speculation.step_cost import StepCost
from swarm.engine.stage_executor import StageExecutor
from swarm.shared.auth import bearer_metadata
from swarm.shared.stage_messages import PipelineStep, Sampled, SessionOpen, StageWork
from swarm.shared.tls import TlsFiles, channel
from swarm.shared.types import SamplingParams
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.stage_messages import step_to_wire, tokens_from_wire
from swarm.worker.decode_groups import best_group_count
from swarm.worker.stage_identity import next_stage_metadata


def _read_replies(replies: Any, inbox: queue.SimpleQueue[pb.StageStepResult | str]) -> None:
    """Moves a stream's replies to inbox; its end or failure arrives as a message saying why."""
    try:
        for reply in replies:
            inbox.put(reply)
        inbox.put("it closed the stream")
    except grpc.RpcError as exc:
        inbox.put(exc.details() or exc.code().name)


CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StageReply:
    """A step's answer from the next stages: each session's decided tokens, and the seconds they computed."""

    tokens: dict[int, tuple[Sampled, ...]]
    seconds: float  # all the later stages together
    slowest_seconds: float  # the slowest one of them


class StageLink:
    """A stream to the next stage: send steps, receive their tokens in order (called on the engine thread)."""

    def __init__(
        self,
        address: str,
        token: str = "",
        step_timeout_s: float = 30.0,
        tls: TlsFiles | None = None,
        stage: StagePosition | None = None,
    ) -> None:
        """stage: the sender's own; the next stage refuses a stream unless it is the one after (stage_identity)."""
        self.address = address
        self._step_timeout_s = step_timeout_s
        self._channel = channel(address, tls)
        self._stub = pb_grpc.StageStub(self._channel)
        self._metadata = (*bearer_metadata(token), *next_stage_metadata(stage))
        self._outbox: queue.SimpleQueue[pb.StageStep | None] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[pb.StageStepResult | str] = queue.SimpleQueue()
        self._replies: Any = None  # the open stream; None until a step needs one
        self._streams_opened = 0
        self._unanswered = 0  # steps sent on the open stream whose tokens have not been received

    @property
    def stream(self) -> int:
        """Which stream is open (0: none): the next stages' caches live as long as it does."""
        return self._streams_opened if self._replies is not None else 0

    def _open(self) -> None:
        # The next stage may still be loading its weights: wait for it, but not forever, since a dead
        # one must fail the step (and the request move on) rather than hang the whole pipeline.
        try:
            grpc.channel_ready_future(self._channel).result(timeout=CONNECT_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            raise ConnectionError(
                f"next stage {self.address} is not reachable (waited {CONNECT_TIMEOUT_S:.0f} s)"
            ) from None
        self._outbox = queue.SimpleQueue()
        self._streams_opened += 1
        self._replies = self._stub.Forward(iter(self._outbox.get, None), metadata=self._metadata, wait_for_ready=True)
        # Replies are read on their own thread so a step can time out: a stalled (not dead) next
        # stage must fail the step rather than hang every session of this pipeline.
        self._inbox = queue.SimpleQueue()
        reader = threading.Thread(target=_read_replies, args=(self._replies, self._inbox), daemon=True)
        reader.start()

    def send(self, step: pb.StageStep) -> None:
        """Sends a step, opening a stream if none is open; raises ConnectionError if none can be."""
        if self._replies is None:
            self._open()
        self._outbox.put(step)
        self._unanswered += 1

    def receive(self) -> StageReply:
        """The tokens of the oldest step sent, per session (several for a verified proposal), and what the next
        stages spent on it; raises ConnectionError, and the next step opens a fresh stream."""
        if not self._unanswered:
            raise RuntimeError("no step is waiting for its tokens")
        try:
            reply = self._inbox.get(timeout=self._step_timeout_s)
        except queue.Empty:
            reply = f"no answer within {self._step_timeout_s:.0f} s"
        if isinstance(reply, str):
            self.abandon()
            raise ConnectionError(f"next stage {self.address} failed: {reply}")
        self._unanswered -= 1
        return StageReply(tokens_from_wire(reply), reply.stages_seconds, reply.slowest_stage_seconds)

    def abandon(self) -> None:
        """Cancels the open stream and the steps on it; the next stages forget its sessions."""
        if self._replies is not None:
            self._replies.cancel()
            self._outbox.put(None)
            self._replies = None
        self._unanswered = 0

    def close(self) -> None:
        self._outbox.put(None)
        self._channel.close()


@dataclass(frozen=True)
class _SentRows:
    """A work item of a step in flight, as the head needs it when the step's tokens come back."""

    session: int
    sample: bool
    end: int  # the position after its last row
    proposed: int  # how many of its last rows are a proposal
    opened: int  # which opening of the slot sent it: a slot opened again since owns its cells now


@dataclass(frozen=True)
class _SentStep:
    rows: list[_SentRows]
    sent_at: float
    logit_rows: int  # rows with logits when the step only decodes (no prompt chunk), else 0: it times StepCost
    own_seconds: float  # this stage's part of it


class PipelineHead:
    def __init__(
        self,
        executor: StageExecutor,
        link: StageLink,
        bfloat16: bool = False,
        in_flight: int = 2,
        measured_groups: bool = True,
    ) -> None:
        """in_flight: steps sent before the oldest one's tokens are awaited; about one per stage keeps them busy.
        measured_groups: decoding sessions go in as many groups (up to in_flight) as measured step times say
        is fastest; else always in in_flight groups."""
        if not executor.first or executor.last:
            raise ValueError("a pipeline head runs a first stage that is not also the last")
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self._in_flight = in_flight
        self._measured_groups = measured_groups
        self._sent: deque[_SentStep] = deque()
        self._executor = executor
        self._link = link
        self._bfloat16 = bfloat16  # hidden states cross the network as bfloat16: half the bytes, some accuracy
        self._opens: list[SessionOpen] = []
        self._releases: list[int] = []
        self._cached_on: dict[int, int] = {}  # slot -> the link stream its cache was built over
        self._opened: dict[int, int] = {}  # slot -> how many times it was opened
        self._trim: set[int] = set()  # slots whose next rows drop a rejected proposal's cells on every stage
        # Of whole trips through the stages: speculation sizes proposals by what a step of more rows costs.
        self.step_cost = StepCost()
        # Of decode steps by rows, each stage's part: how many groups of sessions pay to keep in flight.
        self._own_cost, self._after_cost, self._slowest_after_cost = StepCost(), StepCost(), StepCost()

    @property
    def batch_capacity(self) -> int:
        return self._executor.batch_capacity

    @property
    def context_per_slot(self) -> int:
        return self._executor.context_per_slot

    @property
    def max_in_flight(self) -> int:
        return self._in_flight

    def decode_groups(self, sessions: int) -> int:
        """One group per step in flight until every stage's decode steps are measured; then as many as are
        fastest by those measurements (one, lock-step, where a stage's cost is mostly per step)."""
        costs = (self._own_cost, self._after_cost, self._slowest_after_cost)
        if not self._measured_groups or not all(cost.settled for cost in costs):
            return self._in_flight
        return best_group_count(sessions, self._in_flight, *(cost.seconds for cost in costs))

    def open(
        self,
        slot: int,
        sampling: SamplingParams,
        prompt: list[int],
        keep: int,
        traceparent: str = "",
        generated: int = 0,
    ) -> int:
        # Every stage keeps the same prefix of the slot's last run, but only over the stream that
        # built it: a broken stream may mean a restarted next stage, whose cache is gone.
        if not self._link.stream or self._cached_on.get(slot) != self._link.stream:
            keep = 0
        keep = self._executor.open(slot, keep=keep)
        self._opens.append(SessionOpen(slot, sampling, tuple(prompt), keep, traceparent, generated))
        # Each stage cuts the slot's cache at `keep` when it opens it: no trim of the last run is due any more.
        self._opened[slot] = self._opened.get(slot, 0) + 1
        self._trim.discard(slot)
        return keep

    def send(self, work: list[StageWork], proposed: Sequence[int] = ()) -> None:
        """proposed: for each work item, how many of its last tokens are a proposal the last stage verifies."""
        started = perf_counter()  # a trip's time starts with this stage's own layers
        counts = list(proposed) or [0] * len(work)
        work = [replace(w, trim=w.session in self._trim) for w in work]
        self._trim.difference_update(w.session for w in work)  # a trim travels with the slot's next rows
        hidden = self._executor.step(work)
        own_seconds = perf_counter() - started
        onward = PipelineStep(
            tuple(self._opens),
            tuple(self._releases),
            tuple(
                StageWork(
                    w.session,
                    w.position,
                    hidden=r.hidden,
                    sample=w.sample,
                    proposal=w.tokens[len(w.tokens) - k :] if k else (),
                    trim=w.trim,
                )
                for w, r, k in zip(work, hidden, counts, strict=True)
            ),
        )
        self._opens.clear()
        self._releases.clear()
        self._link.send(step_to_wire(onward, self._bfloat16))
        decoding = all(w.sample and w.rows == 1 + k for w, k in zip(work, counts, strict=True))
        self._sent.append(
            _SentStep(
                [
                    _SentRows(w.session, w.sample, w.position + w.rows, k, self._opened.get(w.session, 0))
                    for w, k in zip(work, counts, strict=True)
                ],
                started,
                sum(w.rows for w in work) if decoding else 0,
                own_seconds,
            )
        )
        for w in work:
            self._cached_on[w.session] = self._link.stream

    def receive(self) -> list[Sampled | None]:
        return [decided[0] if decided else None for decided in self.receive_decided()]

    def receive_decided(self) -> list[tuple[Sampled, ...] | None]:
        """The oldest step's decided tokens per work item: the first, then those of an accepted proposal. The
        rows a proposal's verification rejected leave this stage's cache now, the later stages' with the
        session's next rows (the last stage dropped them already)."""
        reply = self._link.receive()
        tokens = reply.tokens
        step = self._sent.popleft()
        if step.logit_rows:
            self.step_cost.record(step.logit_rows, perf_counter() - step.sent_at)
            self._own_cost.record(step.logit_rows, step.own_seconds)
            self._after_cost.record(step.logit_rows, reply.seconds)
            self._slowest_after_cost.record(step.logit_rows, reply.slowest_seconds)
        decided: list[tuple[Sampled, ...] | None] = []
        for rows in step.rows:
            mine = tokens.get(rows.session) if rows.sample else None
            decided.append(mine)
            rejected = rows.proposed - (len(mine) - 1) if mine else 0
            if rejected > 0 and rows.opened == self._opened.get(rows.session, 0):
                self._executor.trim(rows.session, rows.end - rejected)
                self._trim.add(rows.session)
        return decided

    def discard(self) -> None:
        self._sent.clear()
        self._trim.clear()
        self._link.abandon()

    def release(self, slot: int, keep_cache: bool) -> None:
        unsent = [o for o in self._opens if o.session == slot]
        if unsent:  # it ended before its first step: the other stages never saw it
            self._opens.remove(unsent[0])
        else:
            self._releases.append(slot)

    def close(self) -> None:
        self._link.close()
        self._executor.close_all()
