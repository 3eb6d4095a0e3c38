"""A decode cut short by interrupt() leaves the KV cache as it found it, and every decode lowers the flag."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from swarm.engine.llama_adapter import LlamaContext, LlamaModel, TokenBatch

PROMPT = "the quick brown fox jumps over the lazy dog " * 4


def _prompt_batch(model: LlamaModel, seq_id: int, start: int = 0) -> TokenBatch:
    tokens = model.tokenize(PROMPT)
    batch = TokenBatch(len(tokens))
    for i, token in enumerate(tokens):
        batch.add(token, start + i, seq_id, i == len(tokens) - 1)
    return batch


def test_an_interrupted_decode_removes_its_cells_and_the_next_runs_whole(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    context = LlamaContext(model, 2, 256, 256, 1)
    first = _prompt_batch(model, 0)
    try:
        assert context.decode(first, interruptible=True)
        held = context.positions(0)
        assert held == first.size
        second = _prompt_batch(model, 0, start=held)

        context.interrupt()
        assert not context.decode(second, interruptible=True)  # stopped at its first graph node
        assert context.positions(0) == held  # its cells left again: the cache is as before it
        assert context.positions(1) == 0

        assert context.decode(second, interruptible=True)  # the flag was lowered by the cut one
        assert context.positions(0) == held + second.size
        logits = context.logits(second.size - 1)
        assert np.isfinite(logits).all()
        second.close()
    finally:
        first.close()
        context.close()


def test_a_decode_that_may_not_stop_runs_whole_and_lowers_the_flag(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    context = LlamaContext(model, 2, 256, 256, 1)
    batch = _prompt_batch(model, 1)
    try:
        context.interrupt()
        assert context.decode(batch, interruptible=False)
        assert context.positions(1) == batch.size
        context.forget(1)
        assert context.decode(batch, interruptible=True)  # nothing raised since: runs whole
        assert context.positions(1) == batch.size
    finally:
        batch.close()
        context.close()


def test_a_flag_raised_by_another_thread_stops_the_next_interruptible_decode(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    context = LlamaContext(model, 1, 256, 256, 1)
    batch = _prompt_batch(model, 0)
    try:
        raiser = threading.Thread(target=context.interrupt)
        raiser.start()
        raiser.join(5)
        assert not raiser.is_alive()
        assert not context.decode(batch, interruptible=True)
        assert context.positions(0) == 0
    finally:
        batch.close()
        context.close()


def test_a_cleared_interrupt_lets_the_next_interruptible_decode_run_whole(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    context = LlamaContext(model, 1, 256, 256, 1)
    batch = _prompt_batch(model, 0)
    try:
        context.interrupt()
        context.clear_interrupt()
        assert context.decode(batch, interruptible=True)
        assert context.positions(0) == batch.size
    finally:
        batch.close()
        context.close()
