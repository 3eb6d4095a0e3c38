"""SpanReceiver: a minimal OTLP/gRPC trace collector in this process, for benchmarks that time a request's hops."""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from swarm.launch.local_swarm import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, str]


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.traces: defaultdict[str, list[ReceivedSpan]] = defaultdict(list)

    def Export(self, request: Any, context: Any) -> Any:
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                service = attributes.get("service.name", "")
                for scope in resource_spans.scope_spans:
                    for s in scope.spans:
                        span = ReceivedSpan(
                            service,
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            s.start_time_unix_nano,
                            s.end_time_unix_nano,
                            {a.key: a.value.string_value for a in s.attributes},
                        )
                        self.traces[span.trace_id].append(span)
        return trace_service_pb2.ExportTraceServiceResponse()


class SpanReceiver:
    """Listens on a loopback port (`endpoint`) until closed; spans are grouped by trace id."""

    def __init__(self) -> None:
        self._collector = _Collector()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self._collector, self._server)
        port = free_port()
        self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"

    def spans(self, trace_id: str) -> dict[str, ReceivedSpan]:
        """The trace's spans by name (the last of a name wins)."""
        with self._collector.lock:
            return {s.name: s for s in self._collector.traces.get(trace_id, [])}

    def all_spans(self, trace_id: str) -> list[ReceivedSpan]:
        """Every span of the trace, in the order received (several may share a name)."""
        with self._collector.lock:
            return list(self._collector.traces.get(trace_id, []))

    def close(self) -> None:
        self._server.stop(grace=None)
