"""gRPC servicer of key management (swarm.v1.Admin): decodes, calls KeyAdmin with the call's access, encodes."""

from __future__ import annotations

import grpc

from swarm.coordinator.tenancy.caller import current_access
from swarm.coordinator.tenancy.key_admin import KeyAdmin
from swarm.coordinator.tenancy.key_record import KeyRecord, KeySettings
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.grpc_errors import error_boundary


def key_to_wire(record: KeyRecord) -> pb.ApiKey:
    return pb.ApiKey(
        name=record.name,
        models=list(record.models),
        expires_ms=record.expires_ms,
        tokens_per_minute=record.tokens_per_minute,
        requests_per_minute=record.requests_per_minute,
        max_streams=record.max_streams,
        priority=record.priority,
        admin=record.admin,
        revoked=record.revoked,
        created_ms=record.created_ms,
        weight=record.weight,
    )


def settings_from_wire(request: pb.CreateKeyRequest) -> KeySettings:
    return KeySettings(
        name=request.name,
        models=tuple(request.models),
        expires=request.expires,
        tokens_per_minute=request.tokens_per_minute,
        requests_per_minute=request.requests_per_minute,
        max_streams=request.max_streams,
        priority=request.priority or "interactive",
        weight=request.weight or 1.0,
        admin=request.admin,
    )


class AdminServicer(pb_grpc.AdminServicer):  # type: ignore[misc]
    def __init__(self, admin: KeyAdmin) -> None:
        self._admin = admin

    @error_boundary
    async def CreateKey(self, request: pb.CreateKeyRequest, context: grpc.aio.ServicerContext) -> pb.CreateKeyResponse:
        record, secret = await self._admin.create(current_access(), settings_from_wire(request))
        return pb.CreateKeyResponse(key=key_to_wire(record), secret=secret)

    @error_boundary
    async def ListKeys(self, request: pb.ListKeysRequest, context: grpc.aio.ServicerContext) -> pb.ListKeysResponse:
        return pb.ListKeysResponse(keys=[key_to_wire(r) for r in await self._admin.list(current_access())])

    @error_boundary
    async def RevokeKey(self, request: pb.RevokeKeyRequest, context: grpc.aio.ServicerContext) -> pb.ApiKey:
        return key_to_wire(await self._admin.revoke(current_access(), request.name))
