"""gRPC servicers of the coordinator: decode, call InferenceService, encode; failures end in error_boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import grpc

from swarm.coordinator.auth.api_keys import bearer_key
from swarm.coordinator.registry import Standing
from swarm.coordinator.service import InferenceService
from swarm.coordinator.tenancy.caller import current_access
from swarm.coordinator.tenancy.resolver import require_admin
from swarm.shared.auth import AUTH_HEADER, TokenGate
from swarm.shared.types import WorkerId
from swarm.shared.validation import check_client_request_id, new_request_id
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.assignment_convert import assignment_to_wire, measurement_from_wire, offer_from_wire
from swarm.wire.convert import (
    event_to_wire,
    models_to_wire,
    raw_request_from_wire,
    status_to_wire,
    worker_info_from_wire,
    worker_load_from_wire,
)
from swarm.wire.embedding_convert import embed_request_from_wire, embed_result_to_wire
from swarm.wire.grpc_errors import error_boundary


class InferenceServicer(pb_grpc.InferenceServicer):  # type: ignore[misc]
    def __init__(self, service: InferenceService) -> None:
        self._service = service

    @error_boundary
    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        raw = raw_request_from_wire(request)
        check_client_request_id(raw.request_id)  # here, not in validate_request: the batch runner's ids pass
        if not raw.request_id:
            raw = replace(raw, request_id=new_request_id())
        # The interceptor let the call in with this key, if keys are required: the request is that key's.
        authorization = next((v for k, v in context.invocation_metadata() or () if k == AUTH_HEADER), None)
        api_key = bearer_key(authorization if isinstance(authorization, str) else None) or ""
        async for event in self._service.generate(raw, api_key, access=current_access()):
            yield event_to_wire(raw.request_id, event)

    @error_boundary
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return models_to_wire(await self._service.list_models(current_access()))

    @error_boundary
    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.GetStatusResponse:
        require_admin(current_access(), "the swarm's status (its workers)")
        return status_to_wire(await self._service.status())

    @error_boundary
    async def Embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext) -> pb.EmbedResponse:
        return embed_result_to_wire(await self._service.embed(embed_request_from_wire(request)))


class RegistryServicer(pb_grpc.RegistryServicer):  # type: ignore[misc]
    def __init__(self, service: InferenceService, token: str, heartbeat_interval_s: float) -> None:
        self._service = service
        self._gate = TokenGate(token, "worker call")
        self._heartbeat_interval_s = heartbeat_interval_s

    @error_boundary
    async def Join(self, request: pb.JoinRequest, context: grpc.aio.ServicerContext) -> pb.JoinResponse:
        await self._gate.check(context)
        worker_id, secret = await self._service.join(worker_info_from_wire(request.info))
        return pb.JoinResponse(
            worker_id=worker_id, heartbeat_interval_s=self._heartbeat_interval_s, worker_secret=secret
        )

    @error_boundary
    async def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext) -> pb.HeartbeatResponse:
        await self._gate.check(context)
        worker_id = WorkerId(request.worker_id)
        load = worker_load_from_wire(request.load)
        measured = measurement_from_wire(request.measured) if request.HasField("measured") else None
        standing, reassign = await self._service.heartbeat(worker_id, request.worker_secret, load, measured)
        return pb.HeartbeatResponse(
            rejoin=standing is Standing.UNKNOWN,
            drain=standing is Standing.DRAINING,
            reassign=reassign,
            draft=self._service.paired_draft(worker_id) if standing is Standing.MEMBER else "",
        )

    @error_boundary
    async def Assign(self, request: pb.AssignRequest, context: grpc.aio.ServicerContext) -> pb.AssignResponse:
        await self._gate.check(context)
        reply = await self._service.assign(offer_from_wire(request))
        return assignment_to_wire(reply)

    @error_boundary
    async def Leave(self, request: pb.LeaveRequest, context: grpc.aio.ServicerContext) -> pb.LeaveResponse:
        await self._gate.check(context)
        await self._service.leave(WorkerId(request.worker_id), request.worker_secret)
        return pb.LeaveResponse()

    @error_boundary
    async def Drain(self, request: pb.DrainRequest, context: grpc.aio.ServicerContext) -> pb.DrainResponse:
        await self._gate.check(context)
        await self._service.drain(WorkerId(request.worker_id))
        return pb.DrainResponse()
