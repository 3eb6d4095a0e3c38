"""Tracing while off costs nothing and makes nothing; the endpoint comes from the flag or the standard variable."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace

from swarm.shared import tracing


def test_off_by_default_every_helper_is_a_no_op() -> None:
    assert not tracing.enabled()
    assert tracing.span("x") is tracing.NO_SPAN
    assert tracing.traceparent() == ""
    assert tracing.outgoing_metadata() == ()
    assert tracing.current_context() is None
    assert tracing.server_interceptors({"/swarm.v1.Worker/Run": "worker.Run"}) == []

    async def work() -> int:
        return 7

    coroutine = work()
    assert tracing.in_span("x", "", coroutine) is coroutine  # no wrapper around the relay
    assert asyncio.run(coroutine) == 7


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tracing.ENDPOINT_ENV, raising=False)
    assert tracing.endpoint_from("") == ""
    monkeypatch.setenv(tracing.ENDPOINT_ENV, "http://collector:4317")
    assert tracing.endpoint_from("") == "http://collector:4317"
    assert tracing.endpoint_from("http://other:4317") == "http://other:4317"


def test_a_traceparent_read_from_metadata_names_the_callers_span() -> None:
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    context = tracing.metadata_context([("authorization", "Bearer x"), ("traceparent", header)])
    assert context is not None
    span_context = trace.get_current_span(context).get_span_context()
    assert format(span_context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(span_context.span_id, "016x") == "b7ad6b7169203331"
    assert tracing.metadata_context([("authorization", "Bearer x")]) is None
