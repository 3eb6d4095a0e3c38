"""A token's text read on several threads at once: the engine thread detokenizes while others read answers."""

from __future__ import annotations

import threading
from pathlib import Path

from swarm.engine.llama_adapter import LlamaModel


def test_token_bytes_read_on_several_threads_at_once_are_each_tokens_own(tiny_model: Path) -> None:
    model = LlamaModel(tiny_model)
    try:
        expected = [model.token_bytes(token) for token in range(model.vocab_size)]
        wrong: list[tuple[int, bytes]] = []

        def read_all(order: range) -> None:
            for _ in range(20):
                wrong.extend((t, b) for t in order if (b := model.token_bytes(t)) != expected[t])

        # Opposite orders: two threads read different tokens at the same moment.
        orders = [range(model.vocab_size), range(model.vocab_size - 1, -1, -1)]
        threads = [threading.Thread(target=read_all, args=(order,)) for order in orders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
        assert not wrong, f"{len(wrong)} reads gave another token's text, e.g. token {wrong[0][0]}: {wrong[0][1]!r}"
    finally:
        model.close()
