"""gRPC servicer of batch jobs: decodes the request, calls BatchService, encodes the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from swarm.coordinator.batch.service import BatchService
from swarm.coordinator.tenancy.admission import check_batch_models
from swarm.coordinator.tenancy.caller import current_access
from swarm.shared.batch_types import BatchLine
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.batch_convert import batch_line_from_wire, batch_result_to_wire, batch_summary_to_wire
from swarm.wire.grpc_errors import error_boundary


class BatchServicer(pb_grpc.BatchServicer):  # type: ignore[misc]
    def __init__(self, service: BatchService) -> None:
        self._service = service

    @error_boundary
    async def SubmitBatch(
        self, chunks: AsyncIterator[pb.BatchSubmitChunk], context: grpc.aio.ServicerContext
    ) -> pb.BatchJob:
        model, size_bytes = "", 0
        lines: list[BatchLine] = []
        async for chunk in chunks:
            model = model or chunk.model
            size_bytes += chunk.ByteSize()
            lines.extend(batch_line_from_wire(line) for line in chunk.lines)
            self._service.check_upload(len(lines), size_bytes)
        access = current_access()
        check_batch_models(access, model, (line.request.model for line in lines))
        return batch_summary_to_wire(await self._service.submit(model, lines, access))

    @error_boundary
    async def GetBatch(self, request: pb.BatchGetRequest, context: grpc.aio.ServicerContext) -> pb.BatchJob:
        return batch_summary_to_wire(await self._service.get(request.job_id, current_access().caller))

    @error_boundary
    async def ListBatches(
        self, request: pb.BatchListRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchListResponse:
        return pb.BatchListResponse(
            jobs=[batch_summary_to_wire(s) for s in await self._service.list(current_access().caller)]
        )

    @error_boundary
    async def CancelBatch(self, request: pb.BatchCancelRequest, context: grpc.aio.ServicerContext) -> pb.BatchJob:
        return batch_summary_to_wire(await self._service.cancel(request.job_id, current_access().caller))

    @error_boundary
    async def GetBatchResults(
        self, request: pb.BatchResultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BatchResult]:
        async for result in self._service.results(request.job_id, request.partial, current_access().caller):
            yield batch_result_to_wire(result)
