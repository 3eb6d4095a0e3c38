"""The worker's Embedder on real llama.cpp: the vectors llama-cpp-python's Llama(embedding=True).embed gives
for the same model and texts, many inputs per decode; bad inputs refused by index."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
import pytest
from llama_cpp import Llama

from swarm.engine.embedder import Embedder, decode_groups
from swarm.engine.llama_adapter import LlamaModel
from swarm.shared.errors import SwarmError

pytestmark = pytest.mark.timeout(60)
TEXTS = ("Hello world", "The quick brown fox jumps over the lazy dog", "a", "embeddings " * 20)


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Iterator[LlamaModel]:
    model = LlamaModel(tiny_model)
    yield model
    model.close()


def reference(path: Path, texts: tuple[str, ...]) -> list[list[float]]:
    # A causal LM's GGUF says no pooling: the swarm pools by the mean, as this does.
    llm = Llama(
        str(path),
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        n_ctx=512,
        n_batch=512,
        n_ubatch=512,
        n_seq_max=8,
        n_threads=1,
        verbose=False,
    )
    try:
        return llm.embed(list(texts), normalize=True)
    finally:
        llm.close()


def test_embeddings_equal_llama_cpp_pythons_for_the_same_texts(model: LlamaModel, tiny_model: Path) -> None:
    embedder = Embedder(model, threads=1, tokens=512, sequences=2)  # 4 inputs: two decodes
    try:
        vectors, tokens = asyncio.run(embedder.embed(TEXTS))
    finally:
        embedder.close()
    expected = reference(tiny_model, TEXTS)
    assert tokens == sum(len(model.tokenize(t)) for t in TEXTS)
    assert len(vectors) == len(TEXTS) and all(len(v) == model.n_embd for v in vectors)
    # Batched with other inputs, a sequence's sums round a little differently: same vectors, to 1e-3.
    np.testing.assert_allclose(np.array(vectors), np.array(expected), atol=1e-3)
    assert min(np.sum(np.array(vectors) * np.array(expected), axis=1)) > 0.9999  # cosine similarity
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_token_inputs_embed_like_their_text_and_bad_ones_are_named(model: LlamaModel) -> None:
    embedder = Embedder(model, threads=1, tokens=64, sequences=4)

    async def run() -> None:
        (from_text, from_tokens), _ = await embedder.embed(("Hello world", tuple(model.tokenize("Hello world"))))
        np.testing.assert_allclose(from_text, from_tokens, atol=1e-6)
        for inputs in (("ok", (model.vocab_size,)), ("ok", "long " * 100)):
            with pytest.raises(SwarmError) as raised:
                await embedder.embed(inputs)
            assert raised.value.message.startswith("input[1]: ")

    try:
        asyncio.run(run())
    finally:
        embedder.close()


def test_requests_waiting_together_share_decodes_and_a_bad_one_fails_alone(model: LlamaModel) -> None:
    embedder = Embedder(model, threads=1, tokens=512, sequences=8)

    async def run() -> None:
        alone = [await embedder.embed((text,)) for text in TEXTS]
        decodes = embedder.decodes
        together = await asyncio.gather(
            *(embedder.embed((text,)) for text in TEXTS), embedder.embed(((model.vocab_size,),)), return_exceptions=True
        )
        assert embedder.decodes - decodes <= 2  # the first perhaps alone, the others in one decode
        assert isinstance(together[-1], SwarmError) and together[-1].message.startswith("input[0]: ")
        for (vectors, tokens), (expected, expected_tokens) in zip(together[:-1], alone, strict=True):
            assert tokens == expected_tokens
            np.testing.assert_allclose(vectors, expected, atol=1e-3)

    try:
        asyncio.run(run())
    finally:
        embedder.close()
    with pytest.raises(SwarmError):  # closed: refused, never queued for a thread that is gone
        asyncio.run(embedder.embed(("late",)))


def test_inputs_are_packed_in_order_by_count_and_tokens() -> None:
    assert decode_groups([3, 3, 3, 3, 3], sequences=2, tokens=100) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert decode_groups([6, 5, 1, 9], sequences=8, tokens=10) == [slice(0, 1), slice(1, 3), slice(3, 4)]
