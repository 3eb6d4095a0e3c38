"""LinkRelay: a TCP relay that makes a loopback connection behave like a LAN link (one-way delay, bandwidth cap).

Each chunk read from one side is forwarded to the other `delay_s` after it finished crossing the
link: a chunk waits for the link to be free, takes size / bandwidth to serialise, then propagates
for `delay_s`. Both directions are modelled alike, each with a link of its own (full duplex).
Bytes are never reordered or dropped. A close (EOF) crosses the link like data, after what was
sent before it; a reset, or a target that cannot be reached, resets the other side, so a killed
process behind the relay looks like a dead peer to the process in front of it.

The loop runs on a select() selector, not epoll: epoll_wait rounds its timeout up to whole
milliseconds, which would turn a 0.25 ms delay into 1 ms; select() sleeps to the microsecond.

Run as a process of its own (what EmulatedLan does, pinned to a PC's cores):
    python -m swarm.bench.lan.link_relay --listen 127.0.0.1:PORT --target 127.0.0.1:PORT --delay-ms 0.25 --gbps 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import selectors
import signal
import socket
import struct
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from swarm.shared.addresses import split_host_port

log = logging.getLogger(__name__)

CHUNK_BYTES = 65536
QUEUED_CHUNKS = 256  # per direction: a slow reader backs the relay up, as a full TCP window would
PR_SET_TIMERSLACK = 29
EOF, RESET = b"", None  # markers queued after a direction's last chunk
T = TypeVar("T")


@dataclass(frozen=True)
class LinkShape:
    delay_s: float  # one-way propagation delay
    bandwidth_bps: float  # bits per second; 0: no cap

    def serialisation_s(self, size: int) -> float:
        return size * 8 / self.bandwidth_bps if self.bandwidth_bps > 0 else 0.0


def reset(writer: asyncio.StreamWriter) -> None:
    """Closes with an RST (SO_LINGER 0), as the kernel does for a process that died with data unread."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Direction:
    """One direction of one connection: reads, stamps each chunk with its arrival time, writes it then."""

    def __init__(self, shape: LinkShape, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        self._shape = shape
        self._source = source
        self._sink = sink
        self._queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(QUEUED_CHUNKS)
        self._link_free_at = 0.0
        self._wake_early_s = 0.0  # learnt: how late a sleep of this loop ends, so chunks leave on time

    def _arrival(self, size: int) -> float:
        departed = max(time.monotonic(), self._link_free_at) + self._shape.serialisation_s(size)
        self._link_free_at = departed
        return departed + self._shape.delay_s

    async def read(self) -> None:
        try:
            while chunk := await self._source.read(CHUNK_BYTES):
                await self._queue.put((self._arrival(len(chunk)), chunk))
            await self._queue.put((self._arrival(0), EOF))
        except OSError:  # ConnectionResetError and kin: the peer is gone without a goodbye
            await self._queue.put((self._arrival(0), RESET))

    async def write(self) -> bool:
        """Delivers chunks on time until the close; True when it ended in a reset (the other side must reset too)."""
        while True:
            arrival, chunk = await self._queue.get()
            wait_s = arrival - time.monotonic() - self._wake_early_s
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                late_s = time.monotonic() - arrival
                # A sleep ends 0.1-0.2 ms late on a busy machine, most of a 0.25 ms link: steer the
                # wake-up so that chunks leave on time on average (never earlier than half the delay).
                self._wake_early_s = min(max(self._wake_early_s + late_s / 8, 0.0), self._shape.delay_s / 2)
            if chunk is RESET:
                return True
            try:
                if chunk == EOF:
                    if self._sink.can_write_eof():
                        self._sink.write_eof()
                    return False
                self._sink.write(chunk)
                await self._sink.drain()
            except OSError:
                return True


class LinkRelay:
    """Listens on `listen` and relays each connection to `target` through a link of the given shape."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int], shape: LinkShape) -> None:
        self._listen = listen
        self._target = target
        self.shape = shape
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the relay is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accepted, *self._listen)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accepted(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
        try:
            target_in, target_out = await asyncio.open_connection(*self._target)
        except OSError:  # nobody behind the link: the caller sees its connection reset
            reset(client_out)
            return
        for writer in (client_out, target_out):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self._relay(client_in, client_out, target_in, target_out)
        except asyncio.CancelledError:
            # Only close() cancels a connection: both sides see the link close. Not re-raised, since
            # Python 3.11's start_server logs a cancelled connection task as an error.
            for writer in (client_out, target_out):
                writer.close()

    async def _relay(
        self,
        client_in: asyncio.StreamReader,
        client_out: asyncio.StreamWriter,
        target_in: asyncio.StreamReader,
        target_out: asyncio.StreamWriter,
    ) -> None:
        forward = _Direction(self.shape, client_in, target_out)
        backward = _Direction(self.shape, target_in, client_out)
        tasks = [asyncio.create_task(t) for t in (forward.read(), backward.read())]
        writers = {asyncio.create_task(forward.write()): client_out, asyncio.create_task(backward.write()): target_out}
        try:
            pending = set(writers)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(task.result() for task in done):  # a reset on one side resets the other
                    for writer in (client_out, target_out):
                        reset(writer)
                    return
            for writer in (client_out, target_out):
                writer.close()
        finally:
            for task in [*tasks, *writers]:
                task.cancel()
            await asyncio.gather(*tasks, *writers, return_exceptions=True)


def precise_loop() -> asyncio.AbstractEventLoop:
    """An event loop that sleeps to the microsecond (see the module's docstring)."""
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def tighten_timer_slack() -> None:
    """Asks Linux to wake this process's sleeps on time, not up to 50 µs late (its default timer slack)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)


def run_precise(main: Coroutine[Any, Any, T]) -> T:
    """Runs main on a precise_loop()."""
    with asyncio.Runner(loop_factory=precise_loop) as runner:
        return runner.run(main)


async def serve(listen: str, target: str, shape: LinkShape) -> None:
    relay = LinkRelay(split_host_port(listen), split_host_port(target), shape)
    await relay.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    log.info("relaying %s -> %s, %.3f ms one way, %.3g bit/s", listen, target, shape.delay_s * 1e3, shape.bandwidth_bps)
    try:
        await stopped.wait()
    finally:
        await relay.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="relay TCP through an emulated LAN link")
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept on")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, default=0.25, help="one-way delay")
    parser.add_argument("--gbps", type=float, default=1.0, help="bandwidth cap in Gbit/s; 0: none")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tighten_timer_slack()
    run_precise(serve(args.listen, args.target, LinkShape(args.delay_ms / 1e3, args.gbps * 1e9)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
