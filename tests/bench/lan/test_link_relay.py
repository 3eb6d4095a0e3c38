"""LinkRelay: delay, bandwidth cap, bytes kept exactly, closes and resets carried across; real sockets on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from swarm.bench.lan.link_relay import LinkRelay, LinkShape, reset, run_precise


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.close()


@asynccontextmanager
async def server(handler: object) -> AsyncIterator[int]:
    listening = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    try:
        yield int(listening.sockets[0].getsockname()[1])
    finally:
        listening.close()


@asynccontextmanager
async def relay_to(port: int, shape: LinkShape) -> AsyncIterator[int]:
    relay = LinkRelay(("127.0.0.1", 0), ("127.0.0.1", port), shape)
    await relay.start()
    try:
        yield relay.port
    finally:
        await relay.close()


async def round_trips(port: int, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        times.append(time.perf_counter() - started)
    writer.close()
    return times


@pytest.mark.parametrize("delay_s", [0.00025, 0.002])
def test_a_round_trip_through_two_relays_takes_four_one_way_delays(delay_s: float) -> None:
    async def main() -> tuple[float, float]:
        shape = LinkShape(delay_s, 1e9)
        async with server(echo) as port, relay_to(port, shape) as inner, relay_to(inner, shape) as outer:
            direct = sorted(await round_trips(port, 30))[15]
            relayed = sorted(await round_trips(outer, 30))[15]
        return direct, relayed

    direct, relayed = run_precise(main())
    # There and back through two links: four one-way delays. The relay steers its wake-ups so that
    # chunks leave on time on average, so one may leave a little early: bounded below at 90%.
    # Loosely bounded above: a shared VM.
    assert relayed >= 0.9 * 4 * delay_s, f"median round trip {relayed * 1e3:.2f} ms"
    assert relayed < 4 * delay_s + direct + 0.004, f"median round trip {relayed * 1e3:.2f} ms"


def test_the_cap_makes_a_transfer_take_size_over_bandwidth_and_keeps_every_byte() -> None:
    payload = os.urandom(3_000_000)
    received = bytearray()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)
        writer.close()

    async def main() -> float:
        async with server(sink) as port, relay_to(port, LinkShape(0.0005, 80e6)) as relayed:
            _, writer = await asyncio.open_connection("127.0.0.1", relayed)
            started = time.perf_counter()
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
            while len(received) < len(payload):
                await asyncio.sleep(0.001)
            took = time.perf_counter() - started
            writer.close()
        return took

    took = run_precise(main())
    expected = len(payload) * 8 / 80e6  # 0.3 s
    assert expected * 0.95 <= took <= expected * 1.6 + 0.1, f"{took:.3f} s for an expected {expected:.3f} s"
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


def test_both_directions_keep_their_bytes_in_order_when_interleaved() -> None:
    pieces = [os.urandom(1 + (i * 7919) % 20000) for i in range(200)]

    async def main() -> bytes:
        async with server(echo) as port, relay_to(port, LinkShape(0.0002, 5e9)) as relayed:
            reader, writer = await asyncio.open_connection("127.0.0.1", relayed)

            async def send() -> None:
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                writer.write_eof()

            sending = asyncio.create_task(send())
            echoed = await reader.read(-1)  # until the echo server's close crosses back
            await sending
            writer.close()
        return echoed

    assert run_precise(main()) == b"".join(pieces)


def test_a_close_crosses_the_link_after_the_data_sent_before_it() -> None:
    async def closes_after_hello(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    async def main() -> tuple[bytes, float]:
        async with server(closes_after_hello) as port, relay_to(port, LinkShape(0.02, 1e9)) as relayed:
            started = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", relayed)
            got = await asyncio.wait_for(reader.read(-1), 5)  # the data, then EOF
            took = time.perf_counter() - started
            writer.close()
        return got, took

    got, took = run_precise(main())
    assert got == b"hello"
    assert took >= 0.02


def test_a_reset_on_one_side_resets_the_other() -> None:
    async def dies_abruptly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        reset(writer)  # as the kernel closes the socket of a SIGKILLed process with data unread

    async def main() -> type[BaseException] | None:
        async with server(dies_abruptly) as port, relay_to(port, LinkShape(0.001, 1e9)) as relayed:
            reader, writer = await asyncio.open_connection("127.0.0.1", relayed)
            writer.write(b"xy")
            try:
                await asyncio.wait_for(reader.read(-1), 5)
                return None
            except ConnectionResetError as exc:
                return type(exc)
            finally:
                writer.close()

    assert run_precise(main()) is ConnectionResetError


def test_a_connection_to_a_link_with_nobody_behind_it_is_reset() -> None:
    async def main() -> bool:
        async with server(echo) as port:
            pass  # closed again: nothing listens on port now
        async with relay_to(port, LinkShape(0.001, 1e9)) as relayed:
            reader, writer = await asyncio.open_connection("127.0.0.1", relayed)
            try:
                await asyncio.wait_for(reader.read(-1), 5)
                return False
            except ConnectionResetError:
                return True
            finally:
                writer.close()

    assert run_precise(main())
