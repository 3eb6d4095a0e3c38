"""GGUF metadata through the adapter: long values (chat templates run to kilobytes) come back whole."""

from __future__ import annotations

from pathlib import Path

from swarm.engine.llama_adapter import LlamaModel
from swarm.gguf_files.synthetic_model import write_tiny_llama


def test_a_chat_template_longer_than_the_first_buffer_comes_back_whole(tmp_path: Path, tiny_model: Path) -> None:
    template = "{% for message in messages %}{{ message['content'] }}{% endfor %}" + "{# é padding #}" * 300
    model = LlamaModel(write_tiny_llama(tmp_path / "chat.gguf", chat_template=template))
    try:
        assert model.metadata("tokenizer.chat_template") == template
        assert model.metadata("general.name") == "tiny-llama"
    finally:
        model.close()
    plain = LlamaModel(tiny_model)
    try:
        assert plain.metadata("tokenizer.chat_template") is None
    finally:
        plain.close()
