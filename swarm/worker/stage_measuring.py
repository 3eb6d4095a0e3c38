"""A pipeline stage measures itself for the planner: its decode time per token under load, and its link onward."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from swarm.engine.stage_executor import StageExecutor
from swarm.shared.auth import bearer_metadata
from swarm.shared.plan_messages import LinkSample, StageMeasurement
from swarm.shared.stage_messages import StageResult, StageWork
from swarm.shared.tls import TlsFiles, aio_channel
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

LINK_PROBE_INTERVAL_S = 10.0
PROBE_PAYLOAD_BYTES = 256 * 1024  # large enough that its transfer shows against the round trip on a LAN
PROBE_PINGS = 3  # empty pings per probe; the fastest is the round trip (the others met other traffic)
PROBE_TIMEOUT_S = 2.0


class DecodeMeter:
    """Decode steps' tokens and seconds, recorded on the engine thread, taken (and restarted) by each heartbeat."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = 0
        self._seconds = 0.0

    def record(self, tokens: int, seconds: float) -> None:
        with self._lock:
            self._tokens += tokens
            self._seconds += seconds

    def take(self) -> tuple[float, int]:
        """Seconds per token since the last take, and over how many tokens (0: none decoded)."""
        with self._lock:
            tokens, seconds = self._tokens, self._seconds
            self._tokens, self._seconds = 0, 0.0
        return (seconds / tokens if tokens else 0.0), tokens


class TimedStageExecutor(StageExecutor):
    """A StageExecutor that times its decode steps (one row per session) into a meter; prompt chunks cost
    less per token, so they are left out."""

    def __init__(self, meter: DecodeMeter, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meter = meter

    def step(self, work: list[StageWork]) -> list[StageResult]:
        started = time.perf_counter()
        results = super().step(work)
        if work and all(w.rows == 1 for w in work):
            self.meter.record(len(work), time.perf_counter() - started)
        return results


class LinkProber:
    """Pings the stage this one feeds every interval and keeps the latest measurement of the link."""

    def __init__(self, peer: str, token: str, tls: TlsFiles | None, interval_s: float = LINK_PROBE_INTERVAL_S) -> None:
        self.peer = peer
        self.latest: LinkSample | None = None
        self._metadata = bearer_metadata(token)
        self._tls = tls
        self._interval_s = interval_s

    async def run(self) -> None:
        channel = aio_channel(self.peer, self._tls)
        stub = pb_grpc.StageStub(channel)
        try:
            while True:
                try:
                    self.latest = await self.probe(stub)
                except grpc.aio.AioRpcError as exc:  # the next stage is loading or gone: its heartbeat says which
                    log.debug("cannot probe the link to %s: %s", self.peer, exc.code().name)
                await asyncio.sleep(self._interval_s)
        finally:
            await channel.close()

    async def probe(self, stub: pb_grpc.StageStub) -> LinkSample:
        rtts = []
        for _ in range(PROBE_PINGS):
            started = time.perf_counter()
            await stub.Ping(pb.StagePing(), metadata=self._metadata, timeout=PROBE_TIMEOUT_S)
            rtts.append(time.perf_counter() - started)
        rtt = min(rtts)
        started = time.perf_counter()
        await stub.Ping(
            pb.StagePing(payload=bytes(PROBE_PAYLOAD_BYTES)), metadata=self._metadata, timeout=PROBE_TIMEOUT_S
        )
        transfer = max(time.perf_counter() - started - rtt, 1e-6)
        return LinkSample(self.peer, rtt, PROBE_PAYLOAD_BYTES / transfer)


@contextlib.asynccontextmanager
async def probing(peer: str, token: str, tls: TlsFiles | None) -> AsyncIterator[LinkProber | None]:
    """A LinkProber running while the body runs; None for a stage that feeds nothing (the last)."""
    if not peer:
        yield None
        return
    prober = LinkProber(peer, token, tls)
    task = asyncio.create_task(prober.run())
    try:
        yield prober
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def stage_measurement(meter: DecodeMeter, prober: LinkProber | None) -> StageMeasurement:
    """What a heartbeat reports: the decode time since the last one, and the latest link measurement."""
    seconds_per_token, tokens = meter.take()
    links = (prober.latest,) if prober is not None and prober.latest is not None else ()
    return StageMeasurement(seconds_per_token, tokens, links)
