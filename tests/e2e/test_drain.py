"""Drain and leave: a draining worker takes nothing new, finishes or hands back its work, then leaves."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from swarm.client import SwarmClient
from swarm.launch.local_swarm import ManagedProcess, swarm_argv, wait_until
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm, serving_worker

MakeSwarm = Callable[..., RunningSwarm]
PROMPT = "Once upon a time"
MAX_TOKENS = 900  # seconds of work on the slow model


def state_of(client: SwarmClient, worker_id: str) -> str:
    return next((w.state for w in client.status().workers if w.info.worker_id == worker_id), "gone")


class StreamInBackground:
    """One greedy stream read on a thread; started tells when its first piece arrived."""

    def __init__(self, swarm: RunningSwarm, max_tokens: int, request_id: str) -> None:
        self.text = ""
        self.finished: Finished | None = None
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(swarm, max_tokens, request_id))
        self._thread.start()

    def _read(self, swarm: RunningSwarm, max_tokens: int, request_id: str) -> None:
        with swarm.client() as client:
            stream = client.stream(PROMPT, max_tokens=max_tokens, temperature=0.0, request_id=request_id)
            for event in stream:
                if isinstance(event, TextPiece):
                    self.text += event.text
                    self.started.set()
                elif isinstance(event, Finished):
                    self.finished = event

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the stream did not end"


def drain(swarm: RunningSwarm, worker_id: str) -> subprocess.CompletedProcess[str]:
    argv = swarm_argv("drain", worker_id, "--coordinator", swarm.address, "--wait", "60")
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)


def two_workers(make_swarm: MakeSwarm, slow_model: Path, *extra: str) -> tuple[RunningSwarm, dict[str, ManagedProcess]]:
    swarm = make_swarm(workers=0, model=slow_model)
    workers = {name: swarm.add_worker("--worker-id", name, "--context", "1024", *extra, name=name) for name in "ab"}
    swarm.wait_for_workers(2)
    return swarm, workers


def test_a_drained_worker_finishes_its_stream_takes_nothing_new_and_leaves(
    make_swarm: MakeSwarm, slow_model: Path, redis_url: str
) -> None:
    swarm, workers = two_workers(make_swarm, slow_model)
    stream = StreamInBackground(swarm, max_tokens=MAX_TOKENS, request_id="long")
    assert stream.started.wait(30)
    busy = serving_worker(redis_url, "long")
    other = next(name for name in workers if name != busy)
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    drainer = threading.Thread(target=lambda: result.setdefault("drain", drain(swarm, busy)))
    drainer.start()
    with swarm.client() as client:
        wait_until(lambda: state_of(client, busy) == "draining", 10, f"{busy} to show as draining")
        assert stream.finished is None, "the stream ended before the drain: nothing was tested"
        during = client.generate("Hello while draining", max_tokens=4)
        assert during.finished.worker_id == other
        stream.join(60)
        assert stream.finished is not None and stream.finished.worker_id == busy
        assert stream.finished.completion_tokens == MAX_TOKENS
        drainer.join(90)
        assert result["drain"].returncode == 0, result["drain"].stderr
        assert f"{busy}: left" in result["drain"].stdout
        assert state_of(client, busy) == "gone"
    process = workers[busy].process
    assert process is not None and process.wait(10) == 0


def test_work_left_when_the_grace_period_ends_resumes_on_another_worker_unchanged(
    make_swarm: MakeSwarm, slow_model: Path, redis_url: str
) -> None:
    swarm, _ = two_workers(make_swarm, slow_model, "--drain-timeout", "0.5")
    with swarm.client() as client:
        reference = client.generate(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0)
    stream = StreamInBackground(swarm, max_tokens=MAX_TOKENS, request_id="handed-back")
    assert stream.started.wait(30)
    busy = serving_worker(redis_url, "handed-back")
    drained = drain(swarm, busy)
    assert drained.returncode == 0, drained.stderr
    stream.join(60)
    assert stream.finished is not None
    assert stream.finished.worker_id != busy, "the drain came after the end: no hand-back tested"
    assert stream.text == reference.text
    assert stream.finished.completion_tokens == MAX_TOKENS
