"""Client processes of the coordinator capacity benchmark: open concurrent streams, time every token received."""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing.connection
import resource
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
import uvloop

from swarm.bench.load_test_worker import MODEL_NAME
from swarm.shared.auth import bearer_metadata
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

BUCKET_NS = 100_000_000  # receive-time histogram resolution: 0.1 s
CUT_INTERVAL_S = 0.05


@dataclass(frozen=True)
class ClientJob:
    """What one client process runs: `streams` concurrent calls, all started at `start_at_ns` (wall clock)."""

    targets: tuple[str, ...]  # the coordinator, or (direct) the workers, used round-robin
    direct: bool
    streams: int
    tokens: int
    start_at_ns: int
    time_limit_s: float
    streams_per_channel: int
    ramp_s: float  # stream starts spread evenly over this long
    cut_batch: int  # streams cancelled per CUT_INTERVAL_S at the time limit; 0: all at once
    tag: str
    api_key: str = ""  # sent with every Generate ("": none)


@dataclass
class ClientResult:
    first_ns: list[int] = field(default_factory=list)  # per stream: first piece received, 0 if none
    end_ns: list[int] = field(default_factory=list)  # per stream: last piece received, or when cut / failed
    tokens: int = 0
    completed: int = 0
    cut: int = 0  # still running at the step's time limit: cancelled
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency_ns: array[int] = field(default_factory=lambda: array("q"))
    ttft_ns: array[int] = field(default_factory=lambda: array("q"))
    histogram: list[int] = field(default_factory=list)  # pieces received per BUCKET_NS since start_at_ns
    cpu_s: float = 0.0
    error: str = ""


@dataclass
class _StreamState:
    first: int = 0
    last: int = 0
    cut_at: int = 0
    status: str = "cut"


async def _one_stream(call: Any, started_ns: int, start_at_ns: int, state: _StreamState, result: ClientResult) -> None:
    latency = result.latency_ns
    histogram = result.histogram
    buckets = len(histogram)
    clock = time.time_ns
    try:
        async for message in call:
            now = clock()
            if message.WhichOneof("event") != "piece":
                state.status = "completed"
                continue
            # A client that fell behind gets several tokens merged into one piece: one stamp each.
            stamps = message.piece.text.split()
            latency.extend(now - int(stamp) for stamp in stamps)
            if state.first == 0:
                state.first = now
                result.ttft_ns.append(now - started_ns)
            state.last = now
            bucket = (now - start_at_ns) // BUCKET_NS
            if 0 <= bucket < buckets:
                histogram[bucket] += len(stamps)
        if state.status != "completed":
            state.status = "failed: stream ended without Finished"
    except grpc.aio.AioRpcError as exc:
        state.status = f"failed: {exc.code().name}"
        state.last = state.last or clock()
    except asyncio.CancelledError:
        call.cancel()
        raise


async def _run_client(job: ClientJob) -> ClientResult:
    result = ClientResult(histogram=[0] * (int(job.time_limit_s * 1e9) // BUCKET_NS + 50))
    channel_count = max(1, math.ceil(job.streams / job.streams_per_channel))
    # A local subchannel pool gives every channel its own TCP connection, as separate clients would have.
    channels = [
        grpc.aio.insecure_channel(job.targets[i % len(job.targets)], options=[("grpc.use_local_subchannel_pool", 1)])
        for i in range(channel_count)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 15.0)
        stubs: list[Any] = [
            pb_grpc.WorkerStub(c).Run if job.direct else pb_grpc.InferenceStub(c).Generate for c in channels
        ]
        delay_s = (job.start_at_ns - time.time_ns()) / 1e9
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        states = [_StreamState() for _ in range(job.streams)]
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        ramp_start = loop.time()
        for i, state in enumerate(states):
            due = ramp_start + job.ramp_s * i / job.streams  # arrivals spread evenly over the ramp
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            request_id = f"cap-{job.tag}-{i}"
            if job.direct:
                request: Any = pb.RunRequest(request_id=request_id, prompt="load test", max_tokens=job.tokens)
            else:
                request = pb.GenerateRequest(
                    model=MODEL_NAME, prompt="load test", max_tokens=job.tokens, request_id=request_id
                )
            call = stubs[i % len(stubs)](request, metadata=bearer_metadata(job.api_key))
            tasks.append(asyncio.create_task(_one_stream(call, time.time_ns(), job.start_at_ns, state, result)))
        remaining_s = job.time_limit_s - (time.time_ns() - job.start_at_ns) / 1e9
        _, pending = await asyncio.wait(tasks, timeout=max(remaining_s, 0.1))
        # Cut what is still running, a batch at a time (cut_batch 0: all at once, as 1000 clients vanishing would).
        by_task = dict(zip(tasks, states, strict=True))
        still = [t for t in tasks if t in pending]
        batch = job.cut_batch or len(still) or 1
        for first in range(0, len(still), batch):
            now = time.time_ns()
            for task in still[first : first + batch]:
                if not task.done():
                    by_task[task].cut_at = now
                    task.cancel()
            if first + batch < len(still):
                await asyncio.sleep(CUT_INTERVAL_S)
        await asyncio.gather(*tasks, return_exceptions=True)
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        result.cpu_s = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
        for state in states:
            result.first_ns.append(state.first)
            if state.status == "completed":
                result.completed += 1
                result.end_ns.append(state.last)
            elif state.status == "cut":
                result.cut += 1
                result.end_ns.append(state.cut_at or state.last or time.time_ns())
            else:
                result.failed += 1
                result.errors[state.status] += 1
                result.end_ns.append(state.last or time.time_ns())
        result.tokens = len(result.latency_ns)
        return result
    finally:
        for channel in channels:
            await channel.close()


def client_process_main(job: ClientJob, conn: multiprocessing.connection.Connection) -> None:
    """Entry point of a spawned client process: runs the job and sends back its ClientResult."""
    logging.basicConfig(level=logging.WARNING)
    try:
        result = uvloop.run(_run_client(job))
    except Exception as exc:  # reported to the parent, which counts the whole share as failed
        result = ClientResult(error=f"{type(exc).__name__}: {exc}")
    conn.send(result)
    conn.close()
