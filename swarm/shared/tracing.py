"""Request tracing over OpenTelemetry: off unless an OTLP endpoint is set; spans per request and hop, not per token.

A process turns it on once (`setup`, from its command's --otlp-endpoint or the standard
OTEL_EXPORTER_OTLP_ENDPOINT). While it is off every helper here returns at its first
line, so the request path pays one global read per hop. Trace context crosses processes
as a W3C `traceparent`: in gRPC metadata on calls, and in a request's own record
(GenerationRequest.traceparent) where the work moves between tasks or through Redis.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from swarm.shared.method_handlers import rebuilt_handler

log = logging.getLogger(__name__)
T = TypeVar("T")

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACEPARENT = "traceparent"
EXPORT_DELAY_MS = 500  # spans reach the collector within about this long
# An export (retries included) gives up after this: a hung collector must not hold up a stop for long.
EXPORT_TIMEOUT_S = 2.0

Kind = trace.SpanKind
_propagator = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None  # None: tracing is off
_provider: Any = None  # the SDK's TracerProvider while on
NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()


def endpoint_from(flag: str) -> str:
    """The OTLP/gRPC endpoint to export to: the flag, else $OTEL_EXPORTER_OTLP_ENDPOINT, else "" (off)."""
    return flag or os.environ.get(ENDPOINT_ENV, "")


def setup(service_name: str, endpoint: str) -> None:
    """Exports this process's spans as service_name to an OTLP/gRPC collector; nothing when endpoint is ""."""
    global _tracer, _provider
    if not endpoint or _tracer is not None:
        return
    # The SDK and exporter load only when tracing is on: a process without it never imports them.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    insecure = not endpoint.startswith("https://")
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=insecure, timeout=EXPORT_TIMEOUT_S)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_DELAY_MS))
    _provider = provider
    _tracer = provider.get_tracer("swarm")
    log.info("tracing on: spans of %s go to %s over OTLP/gRPC", service_name, endpoint)


def shutdown() -> None:
    """Sends the spans not yet exported and turns tracing off."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


def _parent(parent: str | Context | None) -> Context | None:
    if isinstance(parent, str):
        return _propagator.extract({TRACEPARENT: parent}) if parent else None
    return parent


def span(
    name: str, parent: str | Context | None = None, kind: Kind = Kind.INTERNAL, **attributes: str | int
) -> AbstractContextManager[Any]:
    """A span around a block, current inside it; parent: a traceparent or context (default: the current span)."""
    if _tracer is None:
        return NO_SPAN
    return _tracer.start_as_current_span(name, context=_parent(parent), kind=kind, attributes=attributes)


def past_span(name: str, parent: str | Context | None, start_ns: int, end_ns: int = 0, **attributes: str | int) -> None:
    """Records a span that already happened (time.time_ns() stamps), for a wait that crossed tasks or threads."""
    if _tracer is None:
        return
    begun = _tracer.start_span(name, context=_parent(parent), start_time=start_ns, attributes=attributes)
    begun.end(end_time=end_ns or time.time_ns())


def current_context() -> Context | None:
    """The current span's context, to hand to another thread; None when off."""
    return otel_context.get_current() if _tracer is not None else None


def traceparent(context: Context | None = None) -> str:
    """The span of context (default: the current one) as a W3C traceparent; "" when off or outside any span."""
    if _tracer is None:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=context)
    return carrier.get(TRACEPARENT, "")


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying the current span to the callee; () when off."""
    value = traceparent()
    return ((TRACEPARENT, value),) if value else ()


def caller_metadata() -> tuple[tuple[str, str], ...]:
    """For clients: the calling program's current span (its own OpenTelemetry setup, not swarm's) as gRPC
    metadata, so the swarm's spans join its trace; () when it has none."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return tuple(carrier.items())


def metadata_context(metadata: Any) -> Context | None:
    """The caller's span from gRPC invocation metadata (or HTTP headers, any mapping of header names)."""
    pairs = metadata.items() if hasattr(metadata, "items") else metadata or ()
    value = next((v for k, v in pairs if str(k).lower() == TRACEPARENT), "")
    return _parent(value if isinstance(value, str) else "")


def in_span(
    name: str, parent: str | Context | None, work: Coroutine[Any, Any, T], **attributes: str | int
) -> Coroutine[Any, Any, T]:
    """work, run inside a span when tracing is on: for a task, whose context is where it was created, not its
    request's. Off, work itself."""
    if _tracer is None:
        return work
    return _awaited_in_span(name, _parent(parent), work, attributes)


async def _awaited_in_span(
    name: str, parent: Context | None, work: Coroutine[Any, Any, T], attributes: dict[str, str | int]
) -> T:
    with span(name, parent, Kind.CLIENT, **attributes):
        return await work


class ServerSpans(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """One SERVER span per call of the named methods, child of the caller's traceparent; other calls pass."""

    def __init__(self, methods: dict[str, str]) -> None:
        self._methods = methods  # full method name -> span name

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        name = self._methods.get(details.method)
        if handler is None or name is None or handler.unary_stream is None:
            return handler
        parent = metadata_context(details.invocation_metadata)

        def behavior(original: Callable[..., AsyncIterator[Any]], _streams: bool) -> Callable[..., Any]:
            async def traced(request: Any, context: Any) -> AsyncIterator[Any]:
                with span(name, parent, Kind.SERVER):
                    async for reply in original(request, context):
                        yield reply

            return traced

        return rebuilt_handler(handler, behavior)


def server_interceptors(methods: dict[str, str]) -> list[grpc.aio.ServerInterceptor]:
    """[ServerSpans(methods)] while tracing is on, else nothing: an untraced server pays nothing per call."""
    return [ServerSpans(methods)] if _tracer is not None else []


@contextlib.contextmanager
def on_for(service_name: str, endpoint: str) -> Iterator[None]:
    """Tracing on (if endpoint) for a process's life, its last spans sent on the way out."""
    setup(service_name, endpoint)
    try:
        yield
    finally:
        shutdown()
