"""start_listening: a swarm server takes its port alone; a port in use is an error, not a silent share."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from swarm.shared.serving import EXCLUSIVE_PORT, start_listening


async def bind_twice() -> None:
    first = grpc.aio.server(options=[EXCLUSIVE_PORT])
    second = grpc.aio.server(options=[EXCLUSIVE_PORT])
    port = await start_listening(first, "127.0.0.1:0")
    try:
        # gRPC's default (SO_REUSEPORT) would bind this beside the first and split connections between them.
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: the port is in use"):
            await start_listening(second, f"127.0.0.1:{port}")
    finally:
        await first.stop(None)
        await second.stop(None)
    third = grpc.aio.server(options=[EXCLUSIVE_PORT])  # free again once the first has stopped
    assert await start_listening(third, f"127.0.0.1:{port}") == port
    await third.stop(None)


def test_a_second_server_on_a_port_in_use_is_refused() -> None:
    asyncio.run(bind_twice())
