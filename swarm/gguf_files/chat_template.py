"""The chat template a GGUF file carries (tokenizer.chat_template), read from its header without llama.cpp."""

from __future__ import annotations

from pathlib import Path

from swarm.gguf_files.gguf_header import read_gguf_header

CHAT_TEMPLATE_KEY = "tokenizer.chat_template"


def file_chat_template(path: Path) -> str:
    """The file's chat template (Jinja), as a worker serving it reports it; "" when it has none."""
    field = read_gguf_header(path).fields.get(CHAT_TEMPLATE_KEY)
    return field.value if field is not None and isinstance(field.value, str) else ""
