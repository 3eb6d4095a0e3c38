"""WorkerCalls: one gRPC channel and one Relay stream per worker address, shared by every run sent there."""

from __future__ import annotations

import grpc

from swarm.coordinator.relay.worker_channel import RunHandle, WorkerChannel
from swarm.shared import tracing
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import TlsFiles, aio_channel
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc


class WorkerCalls:
    def __init__(self, token: str, tls: TlsFiles | None = None) -> None:
        self._metadata = bearer_metadata(token)
        self._tls = tls
        self._relays: dict[str, WorkerChannel] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}

    def run(self, address: str, request: pb.RunRequest) -> RunHandle:
        """Starts the run on the worker; iterate the handle for its events."""
        relay = self._relays.get(address)
        if relay is None:
            channel = self._channels[address] = aio_channel(address, self._tls)
            relay = self._relays[address] = WorkerChannel(pb_grpc.WorkerStub(channel), self._metadata, address)
        request.traceparent = tracing.traceparent()  # the stream is shared: each run carries its own trace
        return relay.run(request)

    def reset(self, address: str) -> None:
        """Drops the worker's Relay stream (it went silent: hung, or its link is cut); its runs fail over now,
        and the next run there opens a fresh stream."""
        relay = self._relays.get(address)
        if relay is not None:
            relay.reset()

    async def close(self) -> None:
        for relay in self._relays.values():
            await relay.close()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._relays.clear()
