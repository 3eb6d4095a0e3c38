"""A GGUF's chat template is read from its header, as llama.cpp reports it to a worker; "" when it has none."""

from __future__ import annotations

from pathlib import Path

from swarm.gguf_files.chat_template import file_chat_template
from swarm.gguf_files.synthetic_model import write_tiny_llama


def test_the_template_a_file_carries_is_read_and_a_file_without_one_has_none(tmp_path: Path) -> None:
    template = "{% for m in messages %}{{ m.content }}\n{% endfor %}"
    assert file_chat_template(write_tiny_llama(tmp_path / "chat.gguf", seed=0, chat_template=template)) == template
    assert file_chat_template(write_tiny_llama(tmp_path / "base.gguf", seed=0)) == ""
