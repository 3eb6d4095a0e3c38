"""PipelineHead: the Forward of a pipeline's first stage; its layers here, the rest on the next PCs.

BatchEngine schedules the sessions as for a whole model; each step runs through this
stage's layers, its hidden states go to the next stage over one gRPC stream, and the
tokens the last stage sampled come back on it. Up to one step per stage is in flight:
every stage takes its steps in order, so while the later stages compute one step this
one computes the next.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Any

import grpc

from swarm.engine.stage_executor import StageExecutor
from swarm.shared.auth import bearer_metadata
from swarm.shared.stage_messages import PipelineStep, Sampled, SessionOpen, StageWork
from swarm.shared.tls import TlsFiles, channel
from swarm.shared.types import SamplingParams
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.stage_messages import step_to_wire, tokens_from_wire


def _read_replies(replies: Any, inbox: queue.SimpleQueue[pb.StageStepResult | str]) -> None:
    """Moves a stream's replies to inbox; its end or failure arrives as a message saying why."""
    try:
        for reply in replies:
            inbox.put(reply)
        inbox.put("it closed the stream")
    except grpc.RpcError as exc:
        inbox.put(exc.details() or exc.code().name)


CONNECT_TIMEOUT_S = 10.0


class StageLink:
    """A stream to the next stage: send steps, receive their tokens in order (called on the engine thread)."""

    def __init__(
        self, address: str, token: str = "", step_timeout_s: float = 30.0, tls: TlsFiles | None = None
    ) -> None:
        self.address = address
        self._step_timeout_s = step_timeout_s
        self._channel = channel(address, tls)
        self._stub = pb_grpc.StageStub(self._channel)
        self._metadata = bearer_metadata(token)
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

    def receive(self) -> dict[int, Sampled]:
        """The tokens of the oldest step sent; raises ConnectionError, and the next step opens a fresh stream."""
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
        return tokens_from_wire(reply)

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


class PipelineHead:
    def __init__(self, executor: StageExecutor, link: StageLink, bfloat16: bool = False, in_flight: int = 2) -> None:
        """in_flight: steps sent before the oldest one's tokens are awaited; about one per stage keeps them busy."""
        if not executor.first or executor.last:
            raise ValueError("a pipeline head runs a first stage that is not also the last")
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self._in_flight = in_flight
        self._sent: deque[list[tuple[int, bool]]] = deque()  # each step in flight: (session, sampled) per item
        self._executor = executor
        self._link = link
        self._bfloat16 = bfloat16  # hidden states cross the network as bfloat16: half the bytes, some accuracy
        self._opens: list[SessionOpen] = []
        self._releases: list[int] = []
        self._cached_on: dict[int, int] = {}  # slot -> the link stream its cache was built over

    @property
    def batch_capacity(self) -> int:
        return self._executor.batch_capacity

    @property
    def context_per_slot(self) -> int:
        return self._executor.context_per_slot

    @property
    def max_in_flight(self) -> int:
        return self._in_flight

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
        return keep

    def send(self, work: list[StageWork]) -> None:
        hidden = self._executor.step(work)
        onward = PipelineStep(
            tuple(self._opens),
            tuple(self._releases),
            tuple(
                StageWork(w.session, w.position, hidden=r.hidden, sample=w.sample)
                for w, r in zip(work, hidden, strict=True)
            ),
        )
        self._opens.clear()
        self._releases.clear()
        self._link.send(step_to_wire(onward, self._bfloat16))
        self._sent.append([(w.session, w.sample) for w in work])
        for w in work:
            self._cached_on[w.session] = self._link.stream

    def receive(self) -> list[Sampled | None]:
        tokens = self._link.receive()
        return [tokens.get(session) if sampled else None for session, sampled in self._sent.popleft()]

    def discard(self) -> None:
        self._sent.clear()
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
