"""The Usage gRPC service: the usage kept in Redis, summed over a window, for `swarm usage` and tools."""

from __future__ import annotations

from dataclasses import replace

import grpc

from swarm.coordinator.tenancy.caller import current_access
from swarm.coordinator.usage.usage_store import UsageStore
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.grpc_errors import error_boundary
from swarm.wire.usage_convert import usage_to_wire


class UsageServicer(pb_grpc.UsageServicer):  # type: ignore[misc]
    def __init__(self, usage: UsageStore) -> None:
        self._usage = usage

    @error_boundary
    async def GetUsage(self, request: pb.UsageRequest, context: grpc.aio.ServicerContext) -> pb.UsageReport:
        caller = current_access().caller
        tenant = request.tenant
        if not caller.admin:  # a key sees its own usage only
            if tenant and tenant != caller.name:
                raise SwarmError(
                    ErrorCode.PERMISSION_DENIED,
                    f"tenant: API key {caller.name!r} may read only its own usage; other keys' need an admin key",
                )
            tenant = caller.name
        report = await self._usage.report(max(request.since_hour, 0))
        if tenant:
            kept = tuple(r for r in report.rows if r.tenant == tenant)
            # A worker's cost is shared by tokens: its busy time stays whole, so one tenant's share is right.
            report = replace(report, rows=kept)
        return usage_to_wire(report)
