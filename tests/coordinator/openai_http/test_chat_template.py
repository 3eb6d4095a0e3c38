"""Rendering chat templates in the sandbox: real templates' output, refusals, and what the sandbox blocks."""

from __future__ import annotations

import pytest

from swarm.coordinator.openai_http.chat_template import BrokenChatTemplate, ChatMessage, ChatRejected, render_chat

# Gemma's template (as in Gemma 3 GGUFs), abridged to its message loop.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_gemma_template_renders_turns_and_the_generation_prompt_without_a_bos_text() -> None:
    prompt = render_chat(
        GEMMA_TEMPLATE, [ChatMessage("user", " Hi "), ChatMessage("assistant", "Hello"), ChatMessage("user", "Bye")]
    )
    assert prompt == (
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )


def test_chatml_template_with_a_system_message() -> None:
    prompt = render_chat(CHATML_TEMPLATE, [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")])
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_the_templates_raise_exception_becomes_a_rejection_with_its_message() -> None:
    with pytest.raises(ChatRejected, match="roles must alternate"):
        render_chat(GEMMA_TEMPLATE, [ChatMessage("assistant", "I speak first")])


def test_tojson_keeps_non_ascii_text() -> None:
    assert render_chat("{{ messages[0]['content'] | tojson }}", [ChatMessage("user", "héllo")]) == '"héllo"'


def test_the_sandbox_blocks_reaching_python_internals() -> None:
    with pytest.raises(ChatRejected):
        render_chat("{{ messages.__class__.__mro__[1].__subclasses__() }}", [ChatMessage("user", "x")])
    with pytest.raises(ChatRejected):  # immutable: a template cannot change the messages it is given
        render_chat("{{ messages.append(1) }}", [ChatMessage("user", "x")])


def test_a_template_that_does_not_compile_is_the_models_fault() -> None:
    with pytest.raises(BrokenChatTemplate, match="does not compile"):
        render_chat("{% for m in messages %}never closed", [ChatMessage("user", "x")])
