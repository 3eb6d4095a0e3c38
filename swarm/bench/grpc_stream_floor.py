"""The floor under any Python relay: CPU a grpc.aio server spends writing one small message per token.

    python -m swarm.bench.grpc_stream_floor --streams 200 --tokens 400 --rate 50

A server process (uvloop, grpc.aio, the real `Inference/Generate` method and messages) does
nothing but write one `GenerateResponse` piece per stream every 1/rate s, to client processes
reading them, all on 127.0.0.1. Its CPU time per message is what a coordinator pays for each
token it sends to a client, before it reads, journals or routes anything: the relay's own cost
per token (`swarm.bench.coordinator_capacity`) cannot fall below it. Benchmark only.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import psutil
import uvloop

from swarm.launch.local_swarm import free_port
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc


class _Ticker:
    """Wakes every waiting stream once per 1/rate s, as a worker's engine step would."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tick = asyncio.Event()

    async def next(self) -> None:
        await self._tick.wait()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1 / self._rate)
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()


class _PieceServicer(pb_grpc.InferenceServicer):  # type: ignore[misc]
    def __init__(self, ticker: _Ticker) -> None:
        self._ticker = ticker

    async def Generate(self, request: pb.GenerateRequest, context: Any) -> AsyncIterator[pb.GenerateResponse]:
        for i in range(request.max_tokens):
            await self._ticker.next()
            yield pb.GenerateResponse(request_id=request.request_id, piece=pb.TextPiece(text=" token", token_ids=[i]))


async def _serve(port: int, rate: float) -> None:
    ticker = _Ticker(rate)
    ticking = asyncio.create_task(ticker.run())
    server = grpc.aio.server()
    pb_grpc.add_InferenceServicer_to_server(_PieceServicer(ticker), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        await server.wait_for_termination()
    finally:
        ticking.cancel()


def _server_main(port: int, rate: float) -> None:
    uvloop.run(_serve(port, rate))


async def _read(port: int, streams: int, tokens: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.InferenceStub(channel)

        async def one(index: int) -> int:
            received = 0
            async for _ in stub.Generate(pb.GenerateRequest(request_id=f"floor-{index}", max_tokens=tokens)):
                received += 1
            return received

        return sum(await asyncio.gather(*(one(i) for i in range(streams))))


def _client_main(port: int, streams: int, tokens: int, results: Any) -> None:
    results.put(uvloop.run(_read(port, streams, tokens)))


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass(frozen=True)
class FloorRun:
    messages: int
    seconds: float
    server_cpu_s: float

    @property
    def cpu_us_per_message(self) -> float:
        return self.server_cpu_s / self.messages * 1e6


def measure_floor(streams: int, tokens: int, rate: float, client_processes: int = 2) -> FloorRun:
    """One run: the server's CPU over the whole run, from the first stream opened to the last message read."""
    context = multiprocessing.get_context("spawn")
    port = free_port()
    server = context.Process(target=_server_main, args=(port, rate), daemon=True)
    server.start()
    try:
        _wait_for_port(port)
        results = context.Queue()
        shares = [streams // client_processes + (i < streams % client_processes) for i in range(client_processes)]
        clients = [context.Process(target=_client_main, args=(port, n, tokens, results)) for n in shares if n]
        cpu_before, started = _cpu_seconds(server.pid or 0), time.monotonic()
        for client in clients:
            client.start()
        messages = sum(results.get(timeout=60 + 2 * tokens / rate) for _ in clients)
        run = FloorRun(messages, time.monotonic() - started, _cpu_seconds(server.pid or 0) - cpu_before)
        for client in clients:
            client.join(10)
        return run
    finally:
        server.terminate()
        server.join(10)


def _wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    finally:
        channel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm.bench.grpc_stream_floor", description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=400, help="messages per stream")
    parser.add_argument("--rate", type=float, default=50.0, help="messages/s per stream")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if min(args.streams, args.tokens, args.repeats) < 1 or args.rate <= 0:
        parser.error("--streams, --tokens and --repeats must be >= 1 and --rate > 0")
    runs = [measure_floor(args.streams, args.tokens, args.rate) for _ in range(args.repeats)]
    for run in runs:
        print(f"{run.messages} messages in {run.seconds:.1f} s: server CPU {run.cpu_us_per_message:.1f} µs/message")
    median = statistics.median(r.cpu_us_per_message for r in runs)
    print(
        f"grpc.aio floor at {args.streams} streams x {args.rate:g} msg/s, {os.cpu_count()} CPUs shared, "
        f"median of {len(runs)}: {median:.1f} µs of server CPU per message"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
