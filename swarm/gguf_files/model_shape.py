"""model_shape: what the stage planner needs to know of a GGUF model, read from its tensor table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from swarm.gguf_files.gguf_header import GGUFHeader, read_gguf_header
from swarm.gguf_files.stage_files import sliding_window_layers


@dataclass(frozen=True)
class ModelShape:
    """What a plan needs to know of a model: bytes per layer and the extras of the first and last stage."""

    name: str
    layer_bytes: tuple[int, ...]  # weights of each layer
    input_bytes: int  # only the first stage holds these: token embeddings
    output_bytes: int  # only the last stage holds these: output norm and head
    kv_bytes_per_token: int  # KV cache of one layer for one token; a worker holds slots x context tokens
    hidden_size: int = 0  # values of the hidden state one token carries across a cut between stages
    sliding_window: tuple[bool, ...] = ()  # per layer, for models that mix sliding-window and global layers
    architecture: str = ""  # general.architecture ("gemma3", "llama"); empty where the shape was not read from a file

    def __post_init__(self) -> None:
        if not self.layer_bytes:
            raise ValueError(f"model {self.name} has no layers")

    @property
    def n_layers(self) -> int:
        return len(self.layer_bytes)

    def loadable(self, start: int, end: int) -> bool:
        """Whether llama.cpp loads a stage of layers [start, end): one of a model with sliding-window layers
        needs at least one of them (Gemma 3's layer 17 alone is refused)."""
        return not self.sliding_window or any(self.sliding_window[start:end])


_BLOCK = re.compile(r"^blk\.(\d+)\.")
KV_BYTES_PER_VALUE = 2  # llama.cpp's default KV cache type is f16


def _field(header: GGUFHeader, key: str) -> int:
    field = header.fields.get(key)
    if field is None:
        raise ValueError(f"the model has no {key} in its metadata")
    # A per-layer array counts as its last layer's value, as it always has here.
    return field.integer(-1)


def model_shape(path: Path, name: str) -> ModelShape:
    """Bytes of each layer, of the token embeddings (first stage) and of the head (last stage); the KV cache
    of one layer per token. A head tied to the embeddings costs the last stage the embedding table too."""
    header = read_gguf_header(path)
    arch = str(header.fields["general.architecture"].value)
    n_layers = _field(header, f"{arch}.block_count")
    layer_bytes = [0] * n_layers
    embeddings = head = other = 0
    for tensor in header.tensors:
        match = _BLOCK.match(tensor.name)
        if match:
            layer_bytes[int(match.group(1))] += tensor.n_bytes
        elif tensor.name == "token_embd.weight":
            embeddings = tensor.n_bytes
        elif tensor.name == "output.weight":
            head = tensor.n_bytes
        else:
            other += tensor.n_bytes
    hidden_size = _field(header, f"{arch}.embedding_length")
    head_dim = hidden_size // _field(header, f"{arch}.attention.head_count")
    if f"{arch}.attention.key_length" in header.fields:
        head_dim = _field(header, f"{arch}.attention.key_length")
    kv_heads = _field(header, f"{arch}.attention.head_count_kv")
    return ModelShape(
        name=name,
        layer_bytes=tuple(layer_bytes),
        input_bytes=embeddings + other,
        output_bytes=(head or embeddings) + other,
        kv_bytes_per_token=2 * kv_heads * head_dim * KV_BYTES_PER_VALUE,
        hidden_size=hidden_size,
        sliding_window=sliding_window_layers(header, arch, n_layers),
        architecture=arch,
    )
