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
        relay = self._relays.get(address)
        if relay is None:
            relay = self._relays[address] = WorkerChannel(aio_channel(address, self._tls), self._metadata, address)
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
        self._relays.clear()
