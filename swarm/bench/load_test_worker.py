"""Load-test worker: a benchmark-only fake worker streaming timestamped tokens at a fixed rate over the real protocol.

BENCHMARK TOOL ONLY. It generates no real text and runs no model: every "token" it
sends is the wall-clock time (``time.time_ns()``, decimal digits, then a space) at
which the piece was handed to gRPC, so a client on the same machine can subtract it
from its own receive time and get the latency the path in between (the coordinator)
added. It joins a coordinator through the real Registry service, heartbeats every
second and serves the real ``swarm.v1.Worker`` calls (Relay, one message per step
for all its streams, and Run); it exists only so that
``swarm.bench.coordinator_capacity`` can offer the coordinator more tokens per second
than real CPU workers could. Never run it in a swarm that serves users.

    python -m swarm.bench.load_test_worker --coordinator 127.0.0.1:50051 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import uvloop

from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.serving import start_listening, stop_on_signals
from swarm.shared.types import Finished, FinishReason, GenerationRequest, TextPiece, WorkerId, WorkerInfo, WorkerLoad
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.convert import run_request_from_wire
from swarm.worker.membership import JoinRefused, Membership
from swarm.worker.relay_channel import Deliver, RelayChannel

log = logging.getLogger(__name__)

MODEL_NAME = "load-test"
DEFAULT_SLOTS = 10_000
CONTEXT_LENGTH = 1_000_000
DEFAULT_MAX_TOKENS = 128
MAX_TOKENS_CAP = 1_000_000  # bounds every Run loop whatever a caller asks for


@dataclass
class _SteppedRun:
    count: int
    deliver: Deliver
    sent: int = 0


class LoadTestServicer(pb_grpc.WorkerServicer):  # type: ignore[misc]
    """Answers every run with `max_tokens` timestamp pieces, at most `rate` per second per stream, then Finished."""

    def __init__(self, tokens_per_second_per_stream: float, slots: int) -> None:
        if tokens_per_second_per_stream <= 0:
            raise ValueError("the rate must be positive")
        self._period_s = 1.0 / tokens_per_second_per_stream
        self._slots = slots
        self.worker_id = ""
        self.active = 0
        self.tokens_generated = 0
        self._rate_window: tuple[float, int] = (time.monotonic(), 0)
        self._stepped: dict[str, _SteppedRun] = {}
        self._stepper: asyncio.Task[None] | None = None

    async def Relay(
        self, commands: AsyncIterator[pb.RelayCommand], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RelayBatch]:
        """As a real worker: every running stream gets one token per step, a step every 1/rate s."""
        async for batch in RelayChannel(self._admit_stepped, self._release_stepped).serve(commands):
            yield batch

    def _admit_stepped(self, request: pb.RunRequest, deliver: Deliver) -> GenerationRequest:
        if self.active >= self._slots:
            raise SwarmError(ErrorCode.RESOURCE_EXHAUSTED, "all slots are busy")
        count = min(request.max_tokens or DEFAULT_MAX_TOKENS, MAX_TOKENS_CAP)
        self._stepped[request.request_id] = _SteppedRun(count, deliver)
        self.active += 1
        if self._stepper is None or self._stepper.done():
            self._stepper = asyncio.create_task(self._step_all(), name="load-test-steps")
        return run_request_from_wire(request, MODEL_NAME)

    def _release_stepped(self, request_id: str, cancel: bool) -> None:
        if self._stepped.pop(request_id, None) is not None:
            self.active -= 1

    async def _step_all(self) -> None:
        """One token for every stepped run per period, like an engine's decode step; ends when none is left."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while self._stepped:
            due = max(due + self._period_s, loop.time() - self._period_s)  # fell behind: never burst
            await asyncio.sleep(max(0.0, due - loop.time()))
            stamp = f"{time.time_ns()} "
            for run in list(self._stepped.values()):
                run.deliver(TextPiece(stamp, (run.sent,)))
                run.sent += 1
                self.tokens_generated += 1
                if run.sent == run.count:
                    run.deliver(Finished(FinishReason.LENGTH, 1, run.count, self.worker_id))

    async def Run(
        self, request: pb.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        if self.active >= self._slots:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "all slots are busy")
        count = min(request.max_tokens or DEFAULT_MAX_TOKENS, MAX_TOKENS_CAP)
        request_id = request.request_id
        loop = asyncio.get_running_loop()
        period = self._period_s
        self.active += 1
        try:
            due = loop.time()
            for i in range(count):
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -period:  # fell behind (back-pressure): never burst above the rate
                    due = loop.time()
                due += period
                piece = pb.TextPiece(text=f"{time.time_ns()} ", token_ids=[i])
                yield pb.GenerateResponse(request_id=request_id, piece=piece)
                self.tokens_generated += 1
            finished = pb.Finished(
                reason=pb.FINISH_REASON_LENGTH, prompt_tokens=1, completion_tokens=count, worker_id=self.worker_id
            )
            yield pb.GenerateResponse(request_id=request_id, finished=finished)
        finally:
            self.active -= 1

    def load(self) -> WorkerLoad:
        """What the heartbeat reports: busy slots and the token rate since the last heartbeat."""
        now = time.monotonic()
        since, tokens_then = self._rate_window
        self._rate_window = (now, self.tokens_generated)
        rate = (self.tokens_generated - tokens_then) / (now - since) if now > since else 0.0
        return WorkerLoad(slots_busy=self.active, tokens_per_second=rate, tokens_generated=self.tokens_generated)


class LoadTestWorker:
    """The fake worker: its gRPC server on a loopback port, plus join, heartbeats and leave."""

    def __init__(
        self,
        coordinator: str,
        tokens_per_second_per_stream: float,
        *,
        listen: str = "127.0.0.1:0",
        worker_id: str = "",
        slots: int = DEFAULT_SLOTS,
        token: str = "",
    ) -> None:
        self.coordinator = coordinator
        self.listen = listen
        self.worker_id = worker_id
        self.slots = slots
        self.token = token
        self.servicer = LoadTestServicer(tokens_per_second_per_stream, slots)
        self.address = ""

    async def serve(self, stop: asyncio.Event, max_seconds: float) -> None:
        """Serves until `stop` is set or `max_seconds` have passed, then leaves the swarm."""
        server = grpc.aio.server()
        pb_grpc.add_WorkerServicer_to_server(self.servicer, server)
        port = await start_listening(server, self.listen)
        host = self.listen.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        info = WorkerInfo(
            worker_id=WorkerId(self.worker_id or f"load-test-{port}"),
            address=self.address,
            model=MODEL_NAME,
            context_length=CONTEXT_LENGTH,
            slots=self.slots,
            threads=1,
            hostname=socket.gethostname(),
        )
        membership = Membership(self.coordinator, self.token, info, self.servicer.load)
        try:
            async with membership.joined(stop) as worker_id:
                if worker_id is not None:
                    self.servicer.worker_id = worker_id
                    log.info("load-test worker %s serving on %s", worker_id, self.address)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), max_seconds)
        finally:
            await server.stop(grace=0.5)
            log.info("load-test worker stopped: %d tokens sent", self.servicer.tokens_generated)


async def _watch_parent(stop: asyncio.Event, parent_pid: int) -> None:
    """Stops the worker when the process that started it is gone, so no orphan outlives a benchmark."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("parent process %d is gone; stopping", parent_pid)
            stop.set()
            return
        await asyncio.sleep(1.0)


async def _main(args: argparse.Namespace) -> None:
    worker = LoadTestWorker(args.coordinator, args.rate, listen=args.listen, worker_id=args.worker_id, token=args.token)
    stop = stop_on_signals()
    watchdog = asyncio.create_task(_watch_parent(stop, os.getppid()))
    try:
        await worker.serve(stop, args.max_seconds)
    finally:
        watchdog.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m swarm.bench.load_test_worker",
        description="BENCHMARK TOOL: a fake worker that streams timestamp tokens at a fixed rate (no real text).",
    )
    parser.add_argument("--coordinator", required=True, help="coordinator HOST:PORT")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second per stream (default %(default)s)")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to serve on (default %(default)s)")
    parser.add_argument("--worker-id", default="", help="worker id (default load-test-PORT)")
    parser.add_argument("--token", default="", help="the swarm's join token")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="leave by itself after this long (default %(default)s)"
    )
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.max_seconds <= 0:
        parser.error("--rate and --max-seconds must be positive")
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        uvloop.run(_main(args))
    except JoinRefused as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
