"""WorkerChannel: every run of this coordinator on one worker over one Relay stream, each read as its own.

One message from the worker carries an engine step's tokens for all its sequences, so the
relay costs a message per step, not per token. The stream opens with the first run and
again after it breaks; when it breaks, every run on it fails at once (RunBroken), and the
dispatcher resumes each elsewhere. A run's events are kept as the wire messages: the
relay decodes what it needs, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc

from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class RunBroken(Exception):
    """A run ended without its Finished: the worker refused or dropped it, or the stream broke."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class RunHandle:
    """One request's events from its worker; iterate to read them, `cancel` to stop it there."""

    def __init__(self, stream: _RelayStream, request_id: str) -> None:
        self._stream = stream
        self.request_id = request_id
        self._events: deque[pb.GenerateResponse] = deque()
        self._error: RunBroken | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._ended = False

    def __aiter__(self) -> AsyncIterator[pb.GenerateResponse]:
        return self._read()

    async def _read(self) -> AsyncIterator[pb.GenerateResponse]:
        """The run's events until its Finished; a reader that leaves early calls `cancel` (worker_relay does)."""
        while True:
            while self._events:
                message = self._events.popleft()
                if message.HasField("finished"):
                    self._ended = True
                yield message
                if self._ended:
                    return
            if self._error is not None:
                self._ended = True
                raise self._error
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup

    def cancel(self, reason: str = "cancelled by the coordinator") -> None:
        """Stops the run on the worker; a reader still waiting gets RunBroken(CANCELLED)."""
        if self._ended or self._error is not None:
            return
        self._stream.cancel(self.request_id)
        self.fail(RunBroken(grpc.StatusCode.CANCELLED, reason))

    def deliver(self, message: pb.GenerateResponse) -> None:
        self._events.append(message)
        self._wake()

    def fail(self, error: RunBroken) -> None:
        if self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


class _RelayStream:
    """One opened Relay call and the runs on it; done once the call ended."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...], address: str) -> None:
        self._commands: asyncio.Queue[pb.RelayCommand | None] = asyncio.Queue()
        self._runs: dict[str, RunHandle] = {}
        self._address = address
        call = stub.Relay(self._outgoing(), metadata=metadata)
        self._reader = asyncio.create_task(self._read(call), name=f"relay-{address}")

    @property
    def done(self) -> bool:
        return self._reader.done()

    def start(self, request: pb.RunRequest) -> RunHandle:
        handle = self._runs[request.request_id] = RunHandle(self, request.request_id)
        self._commands.put_nowait(pb.RelayCommand(run=request))
        return handle

    def cancel(self, request_id: str) -> None:
        if self._runs.pop(request_id, None) is not None:
            self._commands.put_nowait(pb.RelayCommand(cancel_request_id=request_id))

    def abandon(self) -> None:
        """Fails every run on the stream and cancels the call, without waiting for it to end."""
        self._reader.cancel()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _outgoing(self) -> AsyncIterator[pb.RelayCommand]:
        while (command := await self._commands.get()) is not None:
            yield command

    async def _read(self, call: Any) -> None:
        error = RunBroken(grpc.StatusCode.UNAVAILABLE, f"worker {self._address} closed its relay stream")
        try:
            async for batch in call:
                runs = self._runs
                for message in batch.events:
                    handle = runs.get(message.request_id)
                    if handle is not None:
                        handle.deliver(message)
                        if message.HasField("finished"):
                            del runs[message.request_id]
                for ended in batch.ended:
                    handle = runs.pop(ended.request_id, None)
                    if handle is not None:
                        handle.fail(RunBroken(_status(ended.code), ended.message))
        except grpc.aio.AioRpcError as exc:
            error = RunBroken(exc.code(), exc.details() or "the relay stream broke")
        except asyncio.CancelledError:
            error = RunBroken(grpc.StatusCode.CANCELLED, "the coordinator is closing")
            call.cancel()
            raise
        finally:
            if self._runs:
                log.warning("relay stream to %s ended with %d runs on it: %s", self._address, len(self._runs), error)
            for handle in self._runs.values():
                handle.fail(error)
            self._runs.clear()


def _status(name: str) -> grpc.StatusCode:
    return grpc.StatusCode[name] if name in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN


class WorkerChannel:
    """The gRPC channel to one worker and its current Relay stream, opened anew after one ends."""

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], address: str) -> None:
        self._channel = channel
        self._stub = pb_grpc.WorkerStub(channel)
        self._metadata = metadata
        self._address = address
        self._stream: _RelayStream | None = None

    def run(self, request: pb.RunRequest) -> RunHandle:
        if self._stream is None or self._stream.done:
            self._stream = _RelayStream(self._stub, self._metadata, self._address)
        return self._stream.start(request)

    async def embed(self, request: pb.EmbedRequest, timeout_s: float) -> pb.EmbedResponse:
        """One Embed call on this channel (not the Relay stream: embeddings are answered whole)."""
        response: pb.EmbedResponse = await self._stub.Embed(request, metadata=self._metadata, timeout=timeout_s)
        return response

    def reset(self) -> None:
        if self._stream is not None and not self._stream.done:
            self._stream.abandon()
        self._stream = None

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
        await self._channel.close()
