"""LlamaModel(repack=False): llama.cpp loads the weights as they are in the file, and decodes the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.llama_adapter.batches import TokenBatch
from swarm.engine.llama_adapter.context import LlamaContext


def last_logits(model: LlamaModel, prompt: str) -> np.ndarray:
    tokens = model.tokenize(prompt)
    context = LlamaContext(model, slots=1, context_per_slot=64, batch_size=64, threads=1)
    batch = TokenBatch(64)
    try:
        for i, token in enumerate(tokens):
            batch.add(token, i, 0, i == len(tokens) - 1)
        context.decode(batch)
        return context.logits(len(tokens) - 1).copy()
    finally:
        batch.close()
        context.close()


def test_a_model_loaded_without_repacking_gives_the_same_logits(tiny_model: Path) -> None:
    logits = {}
    for repack in (True, False):
        model = LlamaModel(tiny_model, repack=repack)
        try:
            assert model.repack is repack
            logits[repack] = last_logits(model, "Hello world, once upon a time")
        finally:
            model.close()
    assert logits[True].shape == logits[False].shape and logits[True].size > 0
    np.testing.assert_allclose(logits[False], logits[True], rtol=0, atol=1e-5)
