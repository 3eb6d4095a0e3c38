"""AsyncSwarmClient: the asyncio twin of SwarmClient, with the same failover between coordinators by request id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from swarm.client.failover import CallAttempts, channel_options, coordinator_addresses
from swarm.client.types import Completion, GenerateOptions, ResumableRequest
from swarm.shared.auth import bearer_metadata
from swarm.shared.embedding_messages import EmbedInput, EmbedRequest, EmbedResult
from swarm.shared.tls import TlsFiles, aio_channel
from swarm.shared.tracing import caller_metadata
from swarm.shared.types import GenerationEvent, ModelSummary, SwarmStatus
from swarm.shared.validation import new_request_id
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.convert import models_from_wire, status_from_wire
from swarm.wire.embedding_convert import embed_request_to_wire, embed_result_from_wire


class AsyncSwarmClient:
    """Talks to one or several coordinators, as SwarmClient does: `address` is one, `"a,b"` or a list."""

    def __init__(
        self,
        address: str | Sequence[str] | None = None,
        *,
        api_key: str = "",
        tls: TlsFiles | None = None,
        retries: int = 5,
        timeout_s: float | None = None,
    ) -> None:
        self.addresses = coordinator_addresses(address)
        self._channels = [aio_channel(a, tls, channel_options(a)) for a in self.addresses]
        self._stubs: list[Any] = [pb_grpc.InferenceStub(c) for c in self._channels]
        self._preferred = 0  # the address that last answered: where the next call starts
        self._metadata = bearer_metadata(api_key)
        self._retries = retries
        self._timeout_s = timeout_s

    @property
    def address(self) -> str:
        """The coordinator that answered last (the first one before any call)."""
        return self.addresses[self._preferred]

    async def __aenter__(self) -> AsyncSwarmClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for c in self._channels:
            await c.close()

    async def stream(
        self, prompt: str, options: GenerateOptions | None = None, **fields: Any
    ) -> AsyncIterator[GenerationEvent]:
        options = options or GenerateOptions(**fields)
        attempts = CallAttempts(len(self.addresses), self._preferred, self._retries)
        call = ResumableRequest(options.to_wire(prompt, options.request_id or new_request_id()), attempts)
        while True:
            index = attempts.index
            try:
                async for message in self._stubs[index].Generate(
                    call.request, metadata=self._metadata + caller_metadata(), timeout=self._timeout_s
                ):
                    self._preferred = index
                    yield call.received(message)
                return
            except grpc.aio.AioRpcError as exc:
                if call.finished:
                    return
                await asyncio.sleep(attempts.after_failure(exc.code(), exc.details() or ""))

    async def generate(self, prompt: str, options: GenerateOptions | None = None, **fields: Any) -> Completion:
        options = options or GenerateOptions(**fields)
        if not options.request_id:
            options = GenerateOptions(**{**options.__dict__, "request_id": new_request_id()})
        return Completion.from_events(options.request_id, [e async for e in self.stream(prompt, options)])

    async def list_models(self) -> list[ModelSummary]:
        return models_from_wire(await self._call("ListModels", pb.ListModelsRequest()))

    async def status(self) -> SwarmStatus:
        return status_from_wire(await self._call("GetStatus", pb.GetStatusRequest()))

    async def embed(self, inputs: Sequence[EmbedInput], model: str = "") -> EmbedResult:
        """One unit vector per input (a text, or token ids), in order, from a worker of the model."""
        request = embed_request_to_wire(EmbedRequest(model, tuple(inputs)))
        return embed_result_from_wire(await self._call("Embed", request, default_timeout_s=120.0))

    async def _call(self, method_name: str, request: Any, default_timeout_s: float = 10.0) -> Any:
        timeout = self._timeout_s or default_timeout_s
        return await self._each_address(
            lambda i: getattr(self._stubs[i], method_name)(request, metadata=self._metadata, timeout=timeout)
        )

    async def _each_address(self, call: Callable[[int], Awaitable[Any]]) -> Any:
        """A unary call, tried at each address in turn (one round, no waits) until one answers."""
        attempts = CallAttempts(len(self.addresses), self._preferred, retries=0)
        while True:
            index = attempts.index
            try:
                answer = await call(index)
            except grpc.aio.AioRpcError as exc:
                attempts.after_failure(exc.code(), exc.details() or "")
                continue
            self._preferred = index
            return answer
