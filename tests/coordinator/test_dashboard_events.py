"""/events against a real coordinator: one JSON snapshot a second, history first, and a clean shutdown mid-stream."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]

pytestmark = pytest.mark.timeout(60)


def snapshots(http: str) -> Iterator[dict[str, Any]]:
    """The data of each server-sent event, as it arrives."""
    response = urllib.request.urlopen(f"http://{http}/events", timeout=10)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            yield json.loads(line.removeprefix("data: "))


def test_events_stream_snapshots_with_the_history_first(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=1)
    (worker_id,) = swarm.up_workers()
    stream = snapshots(swarm.http)
    first = next(stream)
    assert first["history"] and first["history"][-1] == first["sample"]
    assert first["batch_jobs"] == []
    second, third = next(stream), next(stream)
    assert "history" not in second and "history" not in third
    assert second["sample"]["at"] > first["sample"]["at"]
    assert 0.5 < third["sample"]["at"] - second["sample"]["at"] < 2.5  # a new sample about every second
    # A snapshot may be a second old: the worker that just joined is in one of the next few.
    seen = next(s for _, s in zip(range(5), stream, strict=False) if s["workers"])
    assert [w["worker_id"] for w in seen["workers"]] == [worker_id]
    assert seen["workers"][0]["state"] == "up" and seen["workers"][0]["slots"] == 4
    assert seen["problems"] == []


def test_the_coordinator_stops_promptly_while_a_browser_follows_events(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm(workers=0)
    stream = snapshots(swarm.http)
    next(stream)
    started = time.monotonic()
    assert swarm.coordinator.stop(timeout_s=10) == 0  # SIGTERM; 0: it did not need the SIGKILL
    assert time.monotonic() - started < 8
    assert len(list(stream)) <= 2  # the stream ended (a snapshot sent before the stop may still be buffered)
