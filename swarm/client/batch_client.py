"""BatchClient: the blocking Python client of batch jobs (submit, progress, cancel, results in input order)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from swarm.client.types import GenerateOptions, SwarmCallError
from swarm.shared.addresses import default_coordinator
from swarm.shared.auth import bearer_metadata
from swarm.shared.batch_types import BatchLine, BatchResult, BatchSummary
from swarm.shared.tls import TlsFiles, channel
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.batch_convert import batch_result_from_wire, batch_summary_from_wire

# An upload message stays well under gRPC's default 4 MiB message limit.
CHUNK_LINES = 1000
CHUNK_BYTES = 1024 * 1024


class BatchClient:
    """Talks to a coordinator's Batch service (default: $SWARM_COORDINATOR or 127.0.0.1:50051)."""

    def __init__(
        self, address: str | None = None, *, api_key: str = "", tls: TlsFiles | None = None, timeout_s: float = 60.0
    ) -> None:
        self.address = address or default_coordinator()
        self._channel = channel(self.address, tls)
        self._stub: Any = pb_grpc.BatchStub(self._channel)
        self._metadata = bearer_metadata(api_key)
        self._timeout_s = timeout_s

    def __enter__(self) -> BatchClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def submit(self, lines: Sequence[BatchLine], model: str = "") -> BatchSummary:
        """Uploads the job in chunks; the swarm checks every line first and stores all of them or none."""
        return batch_summary_from_wire(self._call(self._stub.SubmitBatch, upload_chunks(lines, model)))

    def get(self, job_id: str) -> BatchSummary:
        return batch_summary_from_wire(self._call(self._stub.GetBatch, pb.BatchGetRequest(job_id=job_id)))

    def list(self) -> list[BatchSummary]:
        return [batch_summary_from_wire(j) for j in self._call(self._stub.ListBatches, pb.BatchListRequest()).jobs]

    def cancel(self, job_id: str) -> BatchSummary:
        return batch_summary_from_wire(self._call(self._stub.CancelBatch, pb.BatchCancelRequest(job_id=job_id)))

    def results(self, job_id: str, partial: bool = False) -> Iterator[BatchResult]:
        """The results in input order; with `partial`, those of the lines finished so far."""
        request = pb.BatchResultsRequest(job_id=job_id, partial=partial)
        try:
            for message in self._stub.GetBatchResults(request, metadata=self._metadata, timeout=self._timeout_s):
                yield batch_result_from_wire(message)
        except grpc.RpcError as exc:
            raise SwarmCallError(exc.code(), exc.details() or "") from None

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise SwarmCallError(exc.code(), exc.details() or "") from None


def upload_chunks(lines: Sequence[BatchLine], model: str) -> Iterator[pb.BatchSubmitChunk]:
    chunk = pb.BatchSubmitChunk(model=model)
    size = 0
    for line in lines:
        message = line_to_wire(line)
        if chunk.lines and (len(chunk.lines) >= CHUNK_LINES or size + message.ByteSize() > CHUNK_BYTES):
            yield chunk
            chunk, size = pb.BatchSubmitChunk(), 0
        chunk.lines.append(message)
        size += message.ByteSize()
    yield chunk


def line_to_wire(line: BatchLine) -> pb.GenerateRequest:
    """A line as the GenerateRequest it is; its custom id travels as the request id."""
    r = line.request
    options = GenerateOptions(
        model=r.model,
        max_tokens=r.max_tokens,
        temperature=r.temperature,
        top_p=r.top_p,
        top_k=r.top_k,
        seed=r.seed,
        stop=r.stop,
        min_p=r.min_p,
        repeat_penalty=r.repeat_penalty,
    )
    return options.to_wire(r.prompt, line.custom_id)
