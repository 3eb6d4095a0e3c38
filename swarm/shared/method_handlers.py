"""Rebuilding a grpc method handler around new behaviour, for server interceptors that wrap or replace calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[..., Any]

# (attribute of a grpc.RpcMethodHandler, its builder, whether requests arrive as a stream)
_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, False),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, True),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
)


def rebuilt_handler(
    handler: Any,
    behavior: Callable[[Behavior, bool], Behavior],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Any:
    """A handler of handler's kind running behavior(original, requests_stream) instead of the original.

    request_deserializer, when given, replaces the handler's own.
    """
    for kind, build, requests_stream in _KINDS:
        original = getattr(handler, kind)
        if original is not None:
            return build(
                behavior(original, requests_stream),
                request_deserializer=request_deserializer or handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    raise ValueError("a method handler without behaviour")
