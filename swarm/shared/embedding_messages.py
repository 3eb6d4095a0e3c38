"""Embedding requests and results inside a process (protobuf only at the wire), and their checks."""

from __future__ import annotations

from dataclasses import dataclass

from swarm.shared.validation import InvalidRequest

EmbedInput = str | tuple[int, ...]  # a text, or token ids embedded as given
MAX_INPUTS = 2048  # OpenAI's limit on inputs per request
MAX_INPUT_BYTES = 256 * 1024  # all texts together, like a prompt


@dataclass(frozen=True)
class EmbedRequest:
    model: str
    inputs: tuple[EmbedInput, ...]
    request_id: str = ""


@dataclass(frozen=True)
class EmbedResult:
    model: str
    vectors: tuple[tuple[float, ...], ...]  # one per input, in order, L2-normalized
    prompt_tokens: int
    worker_id: str = ""


def check_inputs(inputs: tuple[EmbedInput, ...], field: str = "input") -> None:
    """Refuses what no worker could embed, naming the input: none, too many, an empty one, bad token ids."""
    if not inputs:
        raise InvalidRequest(field, "must hold at least one text or token list")
    if len(inputs) > MAX_INPUTS:
        raise InvalidRequest(field, f"at most {MAX_INPUTS} inputs per request, got {len(inputs)}")
    size = 0
    for i, item in enumerate(inputs):
        if not item:
            raise InvalidRequest(f"{field}[{i}]", "must not be empty")
        if isinstance(item, str):
            size += len(item.encode())
        elif any(t < 0 or t > 2**31 - 1 for t in item):
            raise InvalidRequest(f"{field}[{i}]", "token ids must be in [0, 2^31)")
        else:
            size += 4 * len(item)
    if size > MAX_INPUT_BYTES:
        raise InvalidRequest(field, f"holds more than {MAX_INPUT_BYTES} bytes")
