"""The engine's unload hook on a real model: freed, the weights leave the process and requests are refused;
loaded again, the same greedy text comes back. A pipeline head keeps its model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.forward import WholeModel
from swarm.engine.llama_adapter import LlamaModel
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import Finished
from tests.engine.test_batch_engine import Collector, request, run


def mapped(path: Path) -> bool:
    """Whether this process maps the file (llama.cpp mmaps a model's weights)."""
    return str(path) in Path(f"/proc/{os.getpid()}/maps").read_text()


def test_an_unloaded_engine_frees_its_weights_refuses_work_and_answers_the_same_once_loaded(
    tiny_model: Path, tmp_path: Path
) -> None:
    # A file of its own: other tests' models (the same tiny file) may still be mapped in this process.
    tiny_model = Path(shutil.copy(tiny_model, tmp_path / "own.gguf"))
    engine = BatchEngine(LlamaModel(tiny_model), EngineConfig(slots=2, context_per_slot=256, threads=1))
    engine.start()
    try:
        before, _ = run(engine, request("Once upon a time", max_tokens=16))
        assert mapped(tiny_model)
        running = Collector()
        engine.submit(request("a long one", max_tokens=200, rid="running"), running)
        engine.set_loaded(False).result(30)
        assert not mapped(tiny_model)
        ended = running.next()
        while not isinstance(ended, Finished | SwarmError):
            ended = running.next()
        # Cancelled, refused while it waited, or done just before: never left hanging.
        assert isinstance(ended, Finished) or ended.code is ErrorCode.UNAVAILABLE
        refused = Collector()
        engine.submit(request("while unloaded"), refused)
        error = refused.next()
        assert isinstance(error, SwarmError) and error.code is ErrorCode.UNAVAILABLE
        engine.set_loaded(True).result(30)
        assert mapped(tiny_model)
        after, _ = run(engine, request("Once upon a time", max_tokens=16))
        assert after == before  # decoded alone both times: the same text
    finally:
        engine.stop()


def test_a_pipeline_head_keeps_its_model(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    engine = BatchEngine(
        model, EngineConfig(slots=2, context_per_slot=256, threads=1), WholeModel(model, 2, 256, 512, 1)
    )
    assert not engine.can_unload
    engine.start()
    try:
        with pytest.raises(RuntimeError, match="keeps its model"):
            engine.set_loaded(False).result(30)
        assert run(engine, request("still here", max_tokens=4))[1].completion_tokens == 4
    finally:
        engine.stop()
