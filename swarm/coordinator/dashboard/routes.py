"""The dashboard's HTTP routes: the page at /, its files under /static/, and live snapshots at /events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from swarm.coordinator.auth.http_auth import caller_access
from swarm.coordinator.dashboard.batch_jobs import BatchJobSource, BatchJobView, no_batch_jobs
from swarm.coordinator.dashboard.snapshot import snapshot_json
from swarm.coordinator.dashboard.timeseries import Sample, SwarmSampler
from swarm.coordinator.metrics import RequestOutcome
from swarm.coordinator.tenancy.caller import Caller
from swarm.shared.types import SwarmStatus

STATIC_DIR = Path(__file__).parent / "static"
EVENT_WAIT_S = 1.0  # a handler notices a shutting-down server within this long
RECONNECT_MS = 2000  # how soon a browser's EventSource reconnects after losing the stream


def add_dashboard_routes(
    app: web.Application,
    status: Callable[[], Awaitable[SwarmStatus]],
    outcomes: Callable[[], Iterable[RequestOutcome]],
    batch_jobs: BatchJobSource = no_batch_jobs,
) -> None:
    """Adds the dashboard to `app`; the app owns the sampler's task, which its cleanup cancels."""
    sampler = SwarmSampler(status, outcomes, batch_jobs)
    closing = asyncio.Event()

    async def run_sampler(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sampler.run(), name="dashboard-sampler")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def stop_streams(_app: web.Application) -> None:
        closing.set()

    async def page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def events(request: web.Request) -> web.StreamResponse:
        caller = caller_access(request).caller
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        sent = -1
        try:
            await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
            while not closing.is_set():
                newest = await sampler.wait_after(sent, EVENT_WAIT_S)
                if newest == sent or sampler.latest_status is None:
                    await response.write(b": waiting\n\n")  # keeps proxies from timing the stream out
                    continue
                snapshot = _own_snapshot(
                    caller, sampler.latest_status, sampler.samples, sampler.latest_batch_jobs, sent < 0
                )
                sent = newest
                await response.write(f"data: {json.dumps(snapshot, separators=(',', ':'))}\n\n".encode())
        except ConnectionResetError:  # the browser went away
            pass
        return response

    app.cleanup_ctx.append(run_sampler)
    app.on_shutdown.append(stop_streams)
    app.router.add_get("/", page)
    app.router.add_get("/events", events, allow_head=False)
    app.router.add_static("/static/", STATIC_DIR)


def _own_snapshot(
    caller: Caller,
    status: SwarmStatus,
    samples: Iterable[Sample],
    batch_jobs: Sequence[BatchJobView],
    with_history: bool,
) -> dict[str, Any]:
    """The snapshot an admin key sees whole; any other key sees only its own batch jobs, no workers or swarm charts."""
    if caller.admin:
        return snapshot_json(status, list(samples), batch_jobs, with_history=with_history)
    own_jobs = [job for job in batch_jobs if job.owner == caller.owner]
    snapshot = snapshot_json(replace(status, workers=[]), [], own_jobs, with_history=with_history)
    # Problems and models are read off the workers, which this key does not see.
    return {**snapshot, "models": [], "problems": []}
