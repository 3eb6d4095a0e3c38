"""FirstTokenPause (pure) and the engine's use of it: a wait after a round that gave a first token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.first_token_pause import FirstTokenPause
from swarm.engine.llama_adapter import LlamaModel
from tests.engine.test_batch_engine import request, run


def test_a_pause_follows_a_first_token_only() -> None:
    pause = FirstTokenPause(seconds=0.005, share=0.1)
    assert pause.take(now=10.0) == 0
    pause.note_first_token()
    assert pause.take(now=10.0) == 0.005
    assert pause.take(now=10.1) == 0  # taken once per first token


def test_pauses_take_at_most_their_share_of_the_time() -> None:
    pause = FirstTokenPause(seconds=0.005, share=0.08)  # at most one per 62.5 ms
    taken = []
    for step in range(64):  # a first token every 1/64 s for a second (times exact in binary)
        pause.note_first_token()
        taken.append(pause.take(now=step / 64))
    assert sum(taken) == pytest.approx(0.08 * 1.0)
    assert [i for i, t in enumerate(taken) if t][:3] == [0, 4, 8]


def test_skip_forgets_the_first_tokens_so_far_and_zero_seconds_never_pause() -> None:
    pause = FirstTokenPause(seconds=0.005)
    pause.note_first_token()
    pause.skip()
    assert pause.take(now=1.0) == 0
    off = FirstTokenPause(seconds=0)
    off.note_first_token()
    assert off.take(now=1.0) == 0


@pytest.mark.parametrize("seconds,share", [(-0.001, 0.1), (0.5, 0.1), (0.005, 0), (0.005, 1.5)])
def test_a_pause_out_of_range_is_refused(seconds: float, share: float) -> None:
    with pytest.raises(ValueError, match="first-token pause"):
        FirstTokenPause(seconds, share)


def test_an_engine_whose_threads_take_every_core_pauses_once_per_first_token(tiny_model: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    counts = {}
    for name, pause_s in (("on", 0.005), ("off", 0.0)):
        config = EngineConfig(slots=2, context_per_slot=256, threads=cores, first_token_pause_s=pause_s)
        engine = BatchEngine(LlamaModel(tiny_model), config)
        engine.start()
        try:
            _, finished = run(engine, request("Hello world", max_tokens=6, rid=name))
            assert finished.completion_tokens == 6
            counts[name] = engine.meter.first_token_pauses
        finally:
            engine.stop()
    assert counts == {"on": 1, "off": 0}


def test_an_engine_that_leaves_cores_free_never_pauses(tiny_model: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores: an engine of 1 thread on 1 core takes every core")
    engine = BatchEngine(LlamaModel(tiny_model), EngineConfig(slots=2, context_per_slot=256, threads=1))
    engine.start()
    try:
        _, finished = run(engine, request("Hello world", max_tokens=6, rid="free"))
        assert finished.completion_tokens == 6
        assert engine.meter.first_token_pauses == 0
    finally:
        engine.stop()
