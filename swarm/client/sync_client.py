"""SwarmClient: the blocking Python client; streams tokens, failing over between coordinators by request id."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from swarm.client.failover import CallAttempts, channel_options, coordinator_addresses, first_answer
from swarm.client.types import Completion, GenerateOptions, ResumableRequest
from swarm.shared.auth import bearer_metadata
from swarm.shared.embedding_messages import EmbedInput, EmbedRequest, EmbedResult
from swarm.shared.tls import TlsFiles, channel
from swarm.shared.tracing import caller_metadata
from swarm.shared.types import GenerationEvent, ModelSummary, SwarmStatus
from swarm.shared.validation import new_request_id
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.convert import models_from_wire, status_from_wire
from swarm.wire.embedding_convert import embed_request_to_wire, embed_result_from_wire


class SwarmClient:
    """Talks to one or several coordinators of a swarm (default: $SWARM_COORDINATOR or 127.0.0.1:50051).

    `address` is `"a:50051"`, `"a:50051,b:50051"` or a list of them. A call that fails with
    UNAVAILABLE or RESOURCE_EXHAUSTED moves to the next address (a whole round failed: a
    jittered backoff, `retries` times). A generation keeps its request id across attempts,
    so the coordinator it reaches resumes it after the pieces already received rather than
    running it twice.
    """

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
        self._channels = [channel(a, tls, channel_options(a)) for a in self.addresses]
        self._stubs: list[Any] = [pb_grpc.InferenceStub(c) for c in self._channels]
        self._preferred = 0  # the address that last answered: where the next call starts
        self._metadata = bearer_metadata(api_key)
        self._retries = retries
        self._timeout_s = timeout_s

    @property
    def address(self) -> str:
        """The coordinator that answered last (the first one before any call)."""
        return self.addresses[self._preferred]

    def __enter__(self) -> SwarmClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in self._channels:
            c.close()

    def stream(self, prompt: str, options: GenerateOptions | None = None, **fields: Any) -> Iterator[GenerationEvent]:
        """Yields TextPiece events as they are generated, then one Finished."""
        options = options or GenerateOptions(**fields)
        attempts = CallAttempts(len(self.addresses), self._preferred, self._retries)
        call = ResumableRequest(options.to_wire(prompt, options.request_id or new_request_id()), attempts)
        while True:
            index = attempts.index
            try:
                for message in self._stubs[index].Generate(
                    call.request, metadata=self._metadata + caller_metadata(), timeout=self._timeout_s
                ):
                    self._preferred = index
                    yield call.received(message)
                return
            except grpc.RpcError as exc:
                if call.finished:
                    return
                time.sleep(attempts.after_failure(exc.code(), exc.details() or ""))

    def generate(self, prompt: str, options: GenerateOptions | None = None, **fields: Any) -> Completion:
        options = options or GenerateOptions(**fields)
        if not options.request_id:
            options = GenerateOptions(**{**options.__dict__, "request_id": new_request_id()})
        return Completion.from_events(options.request_id, list(self.stream(prompt, options)))

    def list_models(self) -> list[ModelSummary]:
        return models_from_wire(self._call("ListModels", pb.ListModelsRequest()))

    def status(self) -> SwarmStatus:
        return status_from_wire(self._call("GetStatus", pb.GetStatusRequest()))

    def embed(self, inputs: Sequence[EmbedInput], model: str = "") -> EmbedResult:
        """One unit vector per input (a text, or token ids), in order, from a worker of the model."""
        request = embed_request_to_wire(EmbedRequest(model, tuple(inputs)))
        return embed_result_from_wire(self._call("Embed", request, default_timeout_s=120.0))

    def drain_worker(self, worker_id: str, token: str) -> None:
        """An operator's drain: the worker takes nothing new, finishes or hands back its work, and leaves.

        Needs the swarm's join token (workers' calls are guarded by it, not by API keys).
        """
        request = pb.DrainRequest(worker_id=worker_id)
        metadata = bearer_metadata(token)
        self._each_address(
            lambda i: pb_grpc.RegistryStub(self._channels[i]).Drain(request, metadata=metadata, timeout=10.0)
        )

    def _call(self, method_name: str, request: Any, default_timeout_s: float = 10.0) -> Any:
        timeout = self._timeout_s or default_timeout_s
        return self._each_address(
            lambda i: getattr(self._stubs[i], method_name)(request, metadata=self._metadata, timeout=timeout)
        )

    def _each_address(self, call: Callable[[int], Any]) -> Any:
        """A unary call, tried at each address in turn (one round, no waits) until one answers."""
        self._preferred, answer = first_answer(len(self.addresses), self._preferred, call)
        return answer
