"""DraftLink: a worker's stream to the draft PC it is paired with; the engine's DraftFeed on the network side.

The engine thread tells it each sequence's context as it grows and returns at once; the event
loop sends that on the Draft stream and leaves each proposal that comes back in the mailbox,
where the engine takes it when it forms a step. A draft that lost a sequence (it holds fewer than
are running) answers its news with an empty proposal from position 0 and is sent the whole context
again. A draft that fails (its stream errs, or it answers nothing for STALL_S while it has been
told news) is dropped: its proposals are cleared, and the engine goes on with prompt lookup, or
none. The same address is tried again after RETRY_S, if the coordinator still pairs it (a
restarted draft PC); another address is tried at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

import grpc

from swarm.engine.speculation.draft_mailbox import DraftMailbox, DraftProposal
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import TlsFiles, aio_channel
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

STALL_S = 5.0
RETRY_S = 10.0
CLOSE_S = 2.0


class DraftLink:
    def __init__(self, fingerprint: str, token: str = "", tls: TlsFiles | None = None) -> None:
        self.mailbox = DraftMailbox()
        self.fingerprint = fingerprint  # this worker's vocabulary (vocab_fingerprint), told to the draft first
        self._metadata = bearer_metadata(token)
        self._tls = tls
        self._loop: asyncio.AbstractEventLoop | None = None
        self._contexts: dict[str, list[int]] = {}  # every running sequence's context, for a stream opened later
        self._outbox: asyncio.Queue[pb.DraftContext] | None = None  # the open stream's, None while there is none
        self.address = ""  # the draft in use (or last failed)
        self._task: asyncio.Task[None] | None = None
        self._failed_at = 0.0  # monotonic time of the last failure of `address`
        self.streams_opened = 0
        self.failures = 0  # drafts dropped for an error or a stall
        self._news = 0  # context messages queued since the draft last answered

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the link works on: until bound, the engine's news is dropped (no draft is paired yet)."""
        self._loop = loop

    # ------------------------------------------------------------ the engine thread (DraftFeed)

    # Unpaired (the usual case), these return at once: a sequence that started before the worker was paired is
    # never drafted (its news after pairing does not follow from a start the link saw, and is dropped).

    @property
    def paired(self) -> bool:
        return self._loop is not None and bool(self.address)

    def extend(self, sequence: str, start: int, tokens: Sequence[int]) -> None:
        if self._loop is not None and self.address:
            self._loop.call_soon_threadsafe(self._extended, sequence, start, list(tokens))

    def end(self, sequence: str) -> None:
        if self._loop is not None and self.address:
            self._loop.call_soon_threadsafe(self._ended, sequence)

    # ------------------------------------------------------------ the event loop

    def _extended(self, sequence: str, start: int, tokens: list[int]) -> None:
        if start == 0:
            self._contexts[sequence] = list(tokens)
        elif start == len(self._contexts.get(sequence, ())):
            self._contexts[sequence].extend(tokens)
        else:  # news of a sequence it did not follow from the start: nothing a draft could use
            return
        if self._outbox is not None:
            self._outbox.put_nowait(pb.DraftContext(sequence=sequence, start=start, tokens=tokens))
            self._news += 1

    def _ended(self, sequence: str) -> None:
        if self._contexts.pop(sequence, None) is not None and self._outbox is not None:
            self._outbox.put_nowait(pb.DraftContext(sequence=sequence, end=True))

    def use(self, address: str) -> None:
        """The draft the coordinator pairs this worker with now ("" for none); called after every heartbeat."""
        running = self._task is not None and not self._task.done()
        if address == self.address and (running or time.monotonic() - self._failed_at < RETRY_S):
            return
        if self.address and not address:  # its heartbeats stopped (a dead or frozen PC), or it left
            log.info("the coordinator no longer pairs a draft PC with this worker: going on without %s", self.address)
        self._stop()
        self.address = address
        if not address:  # unpaired: news stops coming, so what it kept would only go stale
            self._contexts.clear()
        if address:
            log.info("taking proposals from the draft PC on %s", address)
            self._task = asyncio.create_task(self._run(address))

    async def close(self) -> None:
        task = self._stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _stop(self) -> asyncio.Task[None] | None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self._outbox = None
        self.mailbox.clear()
        return task

    async def _run(self, address: str) -> None:
        outbox: asyncio.Queue[pb.DraftContext] = asyncio.Queue()
        outbox.put_nowait(pb.DraftContext(vocab_fingerprint=self.fingerprint))
        for sequence, context in self._contexts.items():
            outbox.put_nowait(pb.DraftContext(sequence=sequence, start=0, tokens=context))
        self._outbox = outbox
        self._news = len(self._contexts)

        async def requests() -> AsyncIterator[pb.DraftContext]:
            while True:
                yield await outbox.get()

        channel = aio_channel(address, self._tls)
        call = pb_grpc.DraftStub(channel).Propose(requests(), metadata=self._metadata)
        self.streams_opened += 1
        reading: asyncio.Future[object] | None = None
        try:
            while True:
                # A read is never cancelled for being slow (that would end the call): it is waited on again.
                reading = reading or asyncio.ensure_future(call.read())
                done, _ = await asyncio.wait({reading}, timeout=STALL_S)
                if not done:
                    if self._news:
                        raise TimeoutError(f"no proposal for {STALL_S:g} s")
                    continue
                reply, reading = reading.result(), None
                if reply is grpc.aio.EOF or not isinstance(reply, pb.DraftProposal):
                    raise ConnectionError("the draft closed its stream")
                self._news = 0
                if reply.start == 0 and not reply.tokens:  # the draft lost this sequence: all of it again
                    if (whole := self._contexts.get(reply.sequence)) is not None:
                        outbox.put_nowait(pb.DraftContext(sequence=reply.sequence, start=0, tokens=whole))
                    continue
                self.mailbox.post(reply.sequence, DraftProposal(reply.start, tuple(reply.tokens)))
        except grpc.aio.AioRpcError as exc:
            self._failed(address, f"{exc.code().name}: {exc.details()}")
        except (TimeoutError, ConnectionError) as exc:
            self._failed(address, str(exc))
        finally:
            if reading is not None:
                reading.cancel()
            call.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(channel.close(), CLOSE_S)

    def _failed(self, address: str, why: str) -> None:
        log.warning("draft PC %s failed (%s): going on without it", address, why)
        self.failures += 1
        self._failed_at = time.monotonic()
        if self.address == address:
            self._outbox = None
            self.mailbox.clear()
