"""Request tracing end to end: a real swarm exports its spans over OTLP/gRPC to a receiver in the test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from swarm.launch.local_swarm import free_port, wait_until
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """An OTLP trace collector that keeps every span it is sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []

    def Export(self, request: Any, context: Any) -> Any:
        with self._lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    self._spans += [
                        ReceivedSpan(
                            attributes.get("service.name", ""),
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                        )
                        for s in scope.spans
                    ]
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> dict[str, ReceivedSpan]:
        with self._lock:
            return {s.name: s for s in self._spans}


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    collector = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield f"http://127.0.0.1:{port}", collector
    server.stop(grace=None)


COORDINATOR_SPANS = {
    "coordinator.Generate",
    "redis.enqueue",
    "coordinator.queued",
    "coordinator.dispatch",
    "redis.save_first_piece",
}
WORKER_SPANS = {"worker.Run", "worker.wait_for_slot", "worker.prefill_to_first_token"}


def test_one_generate_is_one_trace_across_coordinator_and_worker(
    make_swarm: MakeSwarm, receiver: tuple[str, Receiver]
) -> None:
    endpoint, collector = receiver
    swarm = make_swarm(
        workers=1, coordinator_args=("--otlp-endpoint", endpoint), worker_args=("--otlp-endpoint", endpoint)
    )
    caller = TracerProvider().get_tracer("test")  # the client program's own tracing, recording, not exported
    with caller.start_as_current_span("client.request") as root, swarm.client() as client:
        client.generate("Once upon a time", max_tokens=4, temperature=0.0)
    root_id = format(root.get_span_context().span_id, "016x")
    trace_id = format(root.get_span_context().trace_id, "032x")

    wanted = COORDINATOR_SPANS | WORKER_SPANS
    wait_until(lambda: wanted <= collector.spans().keys(), 20, f"spans {sorted(wanted)}")
    spans = collector.spans()
    assert {spans[n].service for n in COORDINATOR_SPANS} == {"swarm-coordinator"}
    assert {spans[n].service for n in WORKER_SPANS} == {"swarm-worker"}
    assert {spans[n].trace_id for n in wanted} == {trace_id}

    def parent(name: str) -> str:
        return next(n for n, s in spans.items() if s.span_id == spans[name].parent_id)

    assert spans["coordinator.Generate"].parent_id == root_id  # the client's traceparent went along
    for child in ("redis.enqueue", "coordinator.queued", "coordinator.dispatch"):
        assert parent(child) == "coordinator.Generate", child
    assert parent("redis.save_first_piece") == "coordinator.dispatch"
    assert parent("worker.Run") == "coordinator.dispatch"  # carried in the Run call's metadata
    assert parent("worker.wait_for_slot") == "worker.Run"  # carried into the engine thread
    assert parent("worker.prefill_to_first_token") == "worker.Run"
