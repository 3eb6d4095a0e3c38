"""WorkerCalls: one gRPC channel and one Relay stream per worker address, shared by every run sent there."""

from __future__ import annotations

from swarm.coordinator.relay.worker_channel import RunHandle, WorkerChannel
from swarm.shared import tracing
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import TlsFiles, aio_channel
from swarm.wire import swarm_pb2 as pb


class WorkerCalls:
    def __init__(self, token: str, tls: TlsFiles | None = None) -> None:
        self._metadata = bearer_metadata(token)
        self._tls = tls
        self._relays: dict[str, WorkerChannel] = {}

    def run(self, address: str, request: pb.RunRequest) -> RunHandle:
        """Starts the run on the worker; iterate the handle for its events."""
        request.traceparent = tracing.traceparent()  # the stream is shared: each run carries its own trace
        return self._channel(address).run(request)

    async def embed(self, address: str, request: pb.EmbedRequest, timeout_s: float) -> pb.EmbedResponse:
        return await self._channel(address).embed(request, timeout_s)

    def _channel(self, address: str) -> WorkerChannel:
        relay = self._relays.get(address)
        if relay is None:
            relay = self._relays[address] = WorkerChannel(aio_channel(address, self._tls), self._metadata, address)
        return relay

    def reset(self, address: str) -> None:
        """Drops the worker's Relay stream (it went silent: hung, or its link is cut); its runs fail over now,
        and the next run there opens a fresh stream."""
        relay = self._relays.get(address)
        if relay is not None:
            relay.reset()

    async def close(self) -> None:
        for relay in self._relays.values():
            await relay.close()
        self._relays.clear()
