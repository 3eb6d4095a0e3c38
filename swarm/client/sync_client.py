"""SwarmClient: the blocking Python client; streams tokens and retries safely with the same request id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc

from swarm.client.types import Completion, GenerateOptions, ResumableRequest, SwarmCallError
from swarm.shared.addresses import default_coordinator
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import TlsFiles, channel
from swarm.shared.types import GenerationEvent, ModelSummary, SwarmStatus
from swarm.shared.validation import new_request_id
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.convert import models_from_wire, status_from_wire


class SwarmClient:
    """Talks to a coordinator (default: $SWARM_COORDINATOR or 127.0.0.1:50051).

    A generation interrupted by a coordinator restart is retried with the same request
    id, so the swarm resumes it rather than running it twice, and already-received
    pieces are not repeated.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        api_key: str = "",
        tls: TlsFiles | None = None,
        retries: int = 5,
        timeout_s: float | None = None,
    ) -> None:
        self.address = address or default_coordinator()
        self._channel = channel(self.address, tls)
        self._stub: Any = pb_grpc.InferenceStub(self._channel)
        self._metadata = bearer_metadata(api_key)
        self._retries = retries
        self._timeout_s = timeout_s

    def __enter__(self) -> SwarmClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def stream(self, prompt: str, options: GenerateOptions | None = None, **fields: Any) -> Iterator[GenerationEvent]:
        """Yields TextPiece events as they are generated, then one Finished."""
        options = options or GenerateOptions(**fields)
        call = ResumableRequest(options.to_wire(prompt, options.request_id or new_request_id()), self._retries)
        while True:
            try:
                for message in self._stub.Generate(call.request, metadata=self._metadata, timeout=self._timeout_s):
                    yield call.received(message)
                return
            except grpc.RpcError as exc:
                time.sleep(call.retry_delay(exc.code(), exc.details() or ""))

    def generate(self, prompt: str, options: GenerateOptions | None = None, **fields: Any) -> Completion:
        options = options or GenerateOptions(**fields)
        if not options.request_id:
            options = GenerateOptions(**{**options.__dict__, "request_id": new_request_id()})
        return Completion.from_events(options.request_id, list(self.stream(prompt, options)))

    def list_models(self) -> list[ModelSummary]:
        return models_from_wire(self._call(self._stub.ListModels, pb.ListModelsRequest()))

    def status(self) -> SwarmStatus:
        return status_from_wire(self._call(self._stub.GetStatus, pb.GetStatusRequest()))

    def drain_worker(self, worker_id: str, token: str) -> None:
        """An operator's drain: the worker takes nothing new, finishes or hands back its work, and leaves.

        Needs the swarm's join token (workers' calls are guarded by it, not by API keys).
        """
        registry = pb_grpc.RegistryStub(self._channel)
        try:
            registry.Drain(pb.DrainRequest(worker_id=worker_id), metadata=bearer_metadata(token), timeout=10.0)
        except grpc.RpcError as exc:
            raise SwarmCallError(exc.code(), exc.details() or "") from None

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout_s or 10.0)
        except grpc.RpcError as exc:
            raise SwarmCallError(exc.code(), exc.details() or "") from None
