"""WorkerCalls: one gRPC channel per worker address, reused for every request sent there."""

from __future__ import annotations

from typing import Any

import grpc

from swarm.shared import tracing
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import TlsFiles, aio_channel
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc


class WorkerCalls:
    def __init__(self, token: str, tls: TlsFiles | None = None) -> None:
        self._metadata = bearer_metadata(token)
        self._tls = tls
        self._stubs: dict[str, Any] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}

    def run(self, address: str, request: pb.RunRequest) -> Any:
        """Starts a Run stream on the worker; the returned call is read with `await call.read()`."""
        stub = self._stubs.get(address)
        if stub is None:
            channel = aio_channel(address, self._tls)
            self._channels[address] = channel
            stub = self._stubs[address] = pb_grpc.WorkerStub(channel)
        return stub.Run(request, metadata=self._metadata + tracing.outgoing_metadata())

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
