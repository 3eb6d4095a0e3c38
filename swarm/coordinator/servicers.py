"""gRPC servicers of the coordinator: decode the request, call InferenceService, encode the answer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc

from swarm.coordinator.registry import Standing
from swarm.coordinator.service import InferenceService
from swarm.shared.auth import TokenGate
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import WorkerId
from swarm.shared.validation import new_request_id
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.assignment_convert import assignment_to_wire, offer_from_wire
from swarm.wire.convert import (
    event_to_wire,
    raw_request_from_wire,
    worker_info_from_wire,
    worker_info_to_wire,
    worker_load_from_wire,
    worker_load_to_wire,
    worker_state_to_wire,
)

log = logging.getLogger(__name__)


RETRY_AFTER_S = "2"  # the hint a refused (full) request gets in its trailing metadata


async def _abort(context: grpc.aio.ServicerContext, error: SwarmError) -> None:
    retry = (("retry-after", RETRY_AFTER_S),) if error.code is ErrorCode.RESOURCE_EXHAUSTED else ()
    await context.abort(grpc.StatusCode[error.code.name], error.message, trailing_metadata=retry)


class InferenceServicer(pb_grpc.InferenceServicer):  # type: ignore[misc]
    def __init__(self, service: InferenceService) -> None:
        self._service = service

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        raw = raw_request_from_wire(request)
        if not raw.request_id:
            raw = replace(raw, request_id=new_request_id())
        try:
            async for event in self._service.generate(raw):
                yield event_to_wire(raw.request_id, event)
        except SwarmError as error:
            await _abort(context, error)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[
                pb.ModelInfo(
                    name=m.name, context_length=m.context_length, workers_up=m.workers_up, is_default=m.is_default
                )
                for m in await self._service.list_models()
            ]
        )

    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.GetStatusResponse:
        status = await self._service.status()
        return pb.GetStatusResponse(
            workers=[
                pb.WorkerStatus(
                    info=worker_info_to_wire(v.info),
                    state=v.state.value,
                    worker_state=worker_state_to_wire(v.state),
                    load=worker_load_to_wire(v.load),
                    last_heartbeat_age_s=v.heartbeat_age_s,
                )
                for v in status.workers
            ],
            queue_depth=status.queue_depth,
            default_model=status.default_model,
        )


class RegistryServicer(pb_grpc.RegistryServicer):  # type: ignore[misc]
    def __init__(self, service: InferenceService, token: str, heartbeat_interval_s: float) -> None:
        self._service = service
        self._gate = TokenGate(token, "worker call")
        self._heartbeat_interval_s = heartbeat_interval_s

    async def Join(self, request: pb.JoinRequest, context: grpc.aio.ServicerContext) -> pb.JoinResponse:
        await self._gate.check(context)
        try:
            worker_id = await self._service.join(worker_info_from_wire(request.info))
        except SwarmError as error:
            await _abort(context, error)
        return pb.JoinResponse(worker_id=worker_id, heartbeat_interval_s=self._heartbeat_interval_s)

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext) -> pb.HeartbeatResponse:
        await self._gate.check(context)
        worker_id = WorkerId(request.worker_id)
        standing, reassign = await self._service.heartbeat(worker_id, worker_load_from_wire(request.load))
        return pb.HeartbeatResponse(
            rejoin=standing is Standing.UNKNOWN, drain=standing is Standing.DRAINING, reassign=reassign
        )

    async def Assign(self, request: pb.AssignRequest, context: grpc.aio.ServicerContext) -> pb.AssignResponse:
        await self._gate.check(context)
        try:
            reply = await self._service.assign(offer_from_wire(request))
        except SwarmError as error:
            await _abort(context, error)
        return assignment_to_wire(reply)

    async def Leave(self, request: pb.LeaveRequest, context: grpc.aio.ServicerContext) -> pb.LeaveResponse:
        await self._gate.check(context)
        await self._service.leave(WorkerId(request.worker_id))
        return pb.LeaveResponse()

    async def Drain(self, request: pb.DrainRequest, context: grpc.aio.ServicerContext) -> pb.DrainResponse:
        await self._gate.check(context)
        try:
            await self._service.drain(WorkerId(request.worker_id))
        except SwarmError as error:
            await _abort(context, error)
        return pb.DrainResponse()
