"""llama.cpp's own log reaches Python logging at DEBUG: its warnings are about model files, not the swarm."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from swarm.engine.llama_adapter import LlamaContext, LlamaModel, TokenBatch


def test_llama_cpp_warnings_are_debug_lines(tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="swarm.engine.llama_adapter")
    model = LlamaModel(tiny_model)
    # More context per sequence than the model was trained on: llama.cpp warns about it.
    context = LlamaContext(model, 1, 2 * model.context_length_trained, 64, 1)
    context.close()
    model.close()
    lines = [r for r in caplog.records if r.getMessage().startswith("llama.cpp: ")]
    overflow = [r for r in lines if "n_ctx_train" in r.getMessage()]
    assert overflow, [r.getMessage() for r in lines]
    assert {r.levelno for r in lines} == {logging.DEBUG}


def test_an_interrupted_decode_logs_no_error(tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    """llama.cpp logs a decode its abort callback stopped as failed: the swarm asked for it, so it is debug."""
    caplog.set_level(logging.DEBUG, logger="swarm.engine.llama_adapter")
    model = LlamaModel(tiny_model)
    context = LlamaContext(model, 1, 64, 64, 1)
    batch = TokenBatch(1)
    batch.add(model.tokenize("a")[0], 0, 0, True)
    context.interrupt()
    assert not context.decode(batch, interruptible=True)
    batch.close()
    context.close()
    model.close()
    lines = [r for r in caplog.records if r.getMessage().startswith("llama.cpp: ")]
    assert any("compute status: 1" in r.getMessage() for r in lines), [r.getMessage() for r in lines]
    assert {r.levelno for r in lines} == {logging.DEBUG}
