"""BatchClient: the blocking Python client of batch jobs (submit, progress, cancel, results in input order)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from swarm.client.failover import CallAttempts, channel_options, coordinator_addresses, first_answer
from swarm.client.types import GenerateOptions
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
    """Talks to the Batch service of one or several coordinators (default: $SWARM_COORDINATOR or 127.0.0.1:50051).

    `address` is one, `"a:50051,b:50051"` or a list; a call that finds a coordinator
    UNAVAILABLE tries the next (jobs live in Redis, so every coordinator knows them).
    """

    def __init__(
        self,
        address: str | Sequence[str] | None = None,
        *,
        api_key: str = "",
        tls: TlsFiles | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.addresses = coordinator_addresses(address)
        self._channels = [channel(a, tls, channel_options(a)) for a in self.addresses]
        self._stubs: list[Any] = [pb_grpc.BatchStub(c) for c in self._channels]
        self._preferred = 0  # the address that last answered: where the next call starts
        self._metadata = bearer_metadata(api_key)
        self._timeout_s = timeout_s

    @property
    def address(self) -> str:
        """The coordinator that answered last (the first one before any call)."""
        return self.addresses[self._preferred]

    def __enter__(self) -> BatchClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in self._channels:
            c.close()

    def submit(self, lines: Sequence[BatchLine], model: str = "") -> BatchSummary:
        """Uploads the job in chunks; the swarm checks every line first and stores all of them or none.

        A coordinator that dies after taking the whole upload but before answering leaves the job
        stored while this call goes on to the next coordinator: `list()` then shows it twice.
        """
        return batch_summary_from_wire(
            self._each_address(
                lambda i: self._stubs[i].SubmitBatch(
                    upload_chunks(lines, model), metadata=self._metadata, timeout=self._timeout_s
                )
            )
        )

    def get(self, job_id: str) -> BatchSummary:
        return batch_summary_from_wire(self._call("GetBatch", pb.BatchGetRequest(job_id=job_id)))

    def list(self) -> list[BatchSummary]:
        return [batch_summary_from_wire(j) for j in self._call("ListBatches", pb.BatchListRequest()).jobs]

    def cancel(self, job_id: str) -> BatchSummary:
        return batch_summary_from_wire(self._call("CancelBatch", pb.BatchCancelRequest(job_id=job_id)))

    def results(self, job_id: str, partial: bool = False) -> Iterator[BatchResult]:
        """The results in input order; with `partial`, those of the lines finished so far.

        A stream cut off by its coordinator continues from the next coordinator after the last
        line already yielded, so no result is repeated.
        """
        request = pb.BatchResultsRequest(job_id=job_id, partial=partial)
        attempts = CallAttempts(len(self.addresses), self._preferred, retries=0)
        last_line = 0
        while True:
            index = attempts.index
            try:
                for message in self._stubs[index].GetBatchResults(
                    request, metadata=self._metadata, timeout=self._timeout_s
                ):
                    self._preferred = index
                    attempts.progressed()
                    result = batch_result_from_wire(message)
                    if result.line > last_line:
                        last_line = result.line
                        yield result
                return
            except grpc.RpcError as exc:
                attempts.after_failure(exc.code(), exc.details() or "")

    def _call(self, method_name: str, request: Any) -> Any:
        return self._each_address(
            lambda i: getattr(self._stubs[i], method_name)(request, metadata=self._metadata, timeout=self._timeout_s)
        )

    def _each_address(self, call: Callable[[int], Any]) -> Any:
        """A unary call, tried at each address in turn (one round, no waits) until one answers."""
        self._preferred, answer = first_answer(len(self.addresses), self._preferred, call)
        return answer


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
        grammar=r.grammar,
    )
    return options.to_wire(r.prompt, line.custom_id)
