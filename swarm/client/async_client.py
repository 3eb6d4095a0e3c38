"""AsyncSwarmClient: the asyncio twin of SwarmClient, with the same retry-by-request-id behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from swarm.client.types import Completion, GenerateOptions, ResumableRequest, SwarmCallError
from swarm.shared.addresses import default_coordinator
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import TlsFiles, aio_channel
from swarm.shared.types import GenerationEvent, ModelSummary, SwarmStatus
from swarm.shared.validation import new_request_id
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.convert import models_from_wire, status_from_wire


class AsyncSwarmClient:
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
        self._channel = aio_channel(self.address, tls)
        self._stub: Any = pb_grpc.InferenceStub(self._channel)
        self._metadata = bearer_metadata(api_key)
        self._retries = retries
        self._timeout_s = timeout_s

    async def __aenter__(self) -> AsyncSwarmClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def stream(
        self, prompt: str, options: GenerateOptions | None = None, **fields: Any
    ) -> AsyncIterator[GenerationEvent]:
        options = options or GenerateOptions(**fields)
        call = ResumableRequest(options.to_wire(prompt, options.request_id or new_request_id()), self._retries)
        while True:
            try:
                async for message in self._stub.Generate(
                    call.request, metadata=self._metadata, timeout=self._timeout_s
                ):
                    yield call.received(message)
                return
            except grpc.aio.AioRpcError as exc:
                await asyncio.sleep(call.retry_delay(exc.code(), exc.details() or ""))

    async def generate(self, prompt: str, options: GenerateOptions | None = None, **fields: Any) -> Completion:
        options = options or GenerateOptions(**fields)
        if not options.request_id:
            options = GenerateOptions(**{**options.__dict__, "request_id": new_request_id()})
        return Completion.from_events(options.request_id, [e async for e in self.stream(prompt, options)])

    async def list_models(self) -> list[ModelSummary]:
        return models_from_wire(await self._call(self._stub.ListModels, pb.ListModelsRequest()))

    async def status(self) -> SwarmStatus:
        return status_from_wire(await self._call(self._stub.GetStatus, pb.GetStatusRequest()))

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, metadata=self._metadata, timeout=self._timeout_s or 10.0)
        except grpc.aio.AioRpcError as exc:
            raise SwarmCallError(exc.code(), exc.details() or "") from None
