"""Stage files: split models load in llama.cpp, and greedy text chained through the stages equals the whole model.

The chaining helpers here (Stage, generate) run stages in one process through the engine's llama
adapter (EmbeddingBatch in, hidden-state capture out), as DESIGN.md describes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt
import pytest

from swarm.engine.llama_adapter import EmbeddingBatch, LlamaContext, LlamaModel, TokenBatch
from swarm.gguf_files.stage_files import MANIFEST_NAME, StageManifest, UnsupportedArchitecture, split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama

N_CTX = 256
N_GENERATE = 16
TINY_PROMPT = "The quick brown fox"
GEMMA_PROMPT = "The capital of France is"


class Stage:
    """One stage file in its own llama.cpp context: tokens or hidden states in; hidden states or logits out."""

    def __init__(self, path: Path, *, takes_tokens: bool, makes_logits: bool) -> None:
        self.model = LlamaModel(path)
        self.takes_tokens = takes_tokens
        self.makes_logits = makes_logits
        self.context = LlamaContext(self.model, 1, N_CTX, N_CTX, threads=2, capture_hidden=not makes_logits)
        self.tokens = TokenBatch(N_CTX)
        self.hidden = EmbeddingBatch(N_CTX, self.model.n_embd)

    def forward(self, inputs: Sequence[int] | npt.NDArray[np.float32], position: int) -> npt.NDArray[np.float32]:
        """Decodes inputs at positions position..; the last token's logits, or every token's hidden state."""
        n = len(inputs)
        batch: TokenBatch | EmbeddingBatch
        if self.takes_tokens:
            batch = self.tokens
            batch.clear()
            for i, token in enumerate(inputs):
                # Every token of a non-final stage is an output, or the last layer keeps only output rows.
                batch.add(int(token), position + i, 0, not self.makes_logits or i == n - 1)
        else:
            batch = self.hidden
            batch.clear()
            batch.add_rows(inputs, position, 0, "last" if self.makes_logits else "all")
        self.context.decode(batch)
        if self.makes_logits:
            return self.context.logits(n - 1)
        out = self.context.hidden_states()
        assert out.shape == (n, self.model.n_embd)
        return out

    def close(self) -> None:
        self.tokens.close()
        self.hidden.close()
        self.context.close()
        self.model.close()


def open_stages(paths: Sequence[Path]) -> list[Stage]:
    return [Stage(p, takes_tokens=i == 0, makes_logits=i == len(paths) - 1) for i, p in enumerate(paths)]


def generate(stages: Sequence[Stage], prompt: str, n_tokens: int = N_GENERATE) -> list[int]:
    """Greedy decoding through the stages in order: argmax of the last stage's logits."""
    inputs: Any = stages[0].model.tokenize(prompt)
    position, out = 0, []
    for _ in range(n_tokens):
        data = inputs
        for stage in stages:
            data = stage.forward(data, position)
        position += len(inputs)
        inputs = [int(np.argmax(data))]
        out.append(inputs[0])
    return out


def greedy(paths: Sequence[Path], prompt: str) -> list[int]:
    stages = open_stages(paths)
    try:
        return generate(stages, prompt)
    finally:
        for stage in stages:
            stage.close()


def stage_paths(manifest: StageManifest, folder: Path) -> list[Path]:
    return [folder / stage.file for stage in manifest.stages]


def field(path: Path, key: str) -> Any:
    found = gguf.GGUFReader(path).get_field(key)
    return None if found is None else found.contents()


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny4") / "tiny.gguf", seed=0, n_layer=4)


@pytest.fixture(scope="module")
def tiny_whole(tiny4: Path) -> list[int]:
    return greedy([tiny4], TINY_PROMPT)


@pytest.mark.parametrize("count", [2, 3])
def test_tiny_split_files_load_and_match_manifest(tiny4: Path, tmp_path: Path, count: int) -> None:
    manifest = split_model(tiny4, count, tmp_path)
    assert StageManifest.from_json((tmp_path / MANIFEST_NAME).read_text()) == manifest
    assert StageManifest.from_json(manifest.to_json()) == manifest
    assert (manifest.architecture, manifest.n_layers, manifest.embedding_length) == ("llama", 4, 64)
    expected = {2: [(0, 2), (2, 4)], 3: [(0, 1), (1, 2), (2, 4)]}[count]
    assert [(s.layer_start, s.layer_end) for s in manifest.stages] == expected
    whole = LlamaModel(tiny4)
    whole_vocab = whole.vocab_size
    whole.close()
    for stage in manifest.stages:
        path = tmp_path / stage.file
        assert path.stat().st_size == stage.bytes
        assert hashlib.sha256(path.read_bytes()).hexdigest() == stage.sha256
        assert field(path, "swarm.stage.index") == stage.index
        assert field(path, "swarm.stage.layer_start") == stage.layer_start
        assert field(path, "swarm.stage.source_sha256") == manifest.source_sha256
        model = LlamaModel(path)
        try:
            assert model.n_layer == stage.n_layers
            has_vocab = stage.index in (0, count - 1)
            assert model.vocab_size == (whole_vocab if has_vocab else 1)
        finally:
            model.close()
    if count == 3:
        first, middle, last = manifest.stages
        assert field(tmp_path / middle.file, "tokenizer.ggml.model") == "none"
        assert field(tmp_path / middle.file, "tokenizer.ggml.tokens") is None
        assert middle.bytes * 2 < first.bytes and middle.bytes * 4 < last.bytes


@pytest.mark.parametrize("count", [2, 3])
def test_tiny_greedy_through_stages_equals_whole_model(
    tiny4: Path, tiny_whole: list[int], tmp_path: Path, count: int
) -> None:
    manifest = split_model(tiny4, count, tmp_path)
    assert len(set(tiny_whole)) > 3  # the reference text is not degenerate
    assert greedy(stage_paths(manifest, tmp_path), TINY_PROMPT) == tiny_whole


def test_explicit_uneven_ranges(tiny4: Path, tiny_whole: list[int], tmp_path: Path) -> None:
    manifest = split_model(tiny4, [(0, 3), (3, 4)], tmp_path)
    assert [s.n_layers for s in manifest.stages] == [3, 1]
    assert greedy(stage_paths(manifest, tmp_path), TINY_PROMPT) == tiny_whole
    with pytest.raises(ValueError, match="contiguous"):
        split_model(tiny4, [(0, 2), (3, 4)], tmp_path)
    with pytest.raises(ValueError, match="cover"):
        split_model(tiny4, [(0, 2)], tmp_path)


def test_unsupported_architecture_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mamba.gguf"
    writer = gguf.GGUFWriter(path, "mamba")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedArchitecture, match="'mamba'"):
        split_model(path, 2, tmp_path / "out")


def write_metadata_model(path: Path, arch: str, n_layer: int, **arrays: list[int]) -> Path:
    """A GGUF with just enough keys and block tensors for split_model (not loadable by llama.cpp)."""
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(n_layer)
    writer.add_embedding_length(8)
    writer.add_sliding_window(512)
    for key, values in arrays.items():
        writer.add_array(f"{arch}.{key.replace('__', '.')}", values)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.full(8, i, dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_per_layer_metadata_travels_with_the_layers(tmp_path: Path) -> None:
    gemma = write_metadata_model(tmp_path / "g.gguf", "gemma3", 14)
    manifest = split_model(gemma, [(0, 4), (4, 9), (9, 14)], tmp_path / "g")
    for stage in manifest.stages:
        path = tmp_path / "g" / stage.file
        # llama.cpp's default for gemma3: period 6, the last layer of each period global.
        expected = [il % 6 < 5 for il in range(stage.layer_start, stage.layer_end)]
        assert field(path, "gemma3.attention.sliding_window_pattern") == expected
        assert field(path, "gemma3.block_count") == stage.n_layers
        reader = gguf.GGUFReader(path)
        norms = {t.name: float(t.data[0]) for t in reader.tensors if t.name.startswith("blk.")}
        assert norms == {f"blk.{i}.attn_norm.weight": stage.layer_start + i for i in range(stage.n_layers)}
    heads = list(range(1, 7))
    llama = write_metadata_model(
        tmp_path / "l.gguf", "llama", 6, attention__head_count=heads, attention__head_count_kv=heads
    )
    manifest = split_model(llama, 2, tmp_path / "l")
    last = tmp_path / "l" / manifest.stages[1].file
    assert field(last, "llama.attention.head_count") == [4, 5, 6]
    assert field(last, "llama.attention.head_count_kv") == [4, 5, 6]
    assert field(last, "llama.attention.sliding_window_pattern") is None


@pytest.fixture(scope="module")
def gemma_split(gemma_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StageManifest, Path]]:
    folder = tmp_path_factory.mktemp("gemma-stages")
    yield split_model(gemma_model, 2, folder), folder


@pytest.mark.slow
def test_gemma_two_stages_greedy_equals_whole_model(gemma_model: Path, gemma_split: tuple[StageManifest, Path]) -> None:
    manifest, folder = gemma_split
    assert [(s.layer_start, s.layer_end) for s in manifest.stages] == [(0, 9), (9, 18)]
    # The second stage starts mid-period of Gemma 3's 5-local/1-global attention pattern: without the
    # explicit per-layer sliding_window_pattern the 5th generated token already differs.
    whole = greedy([gemma_model], GEMMA_PROMPT)
    assert greedy(stage_paths(manifest, folder), GEMMA_PROMPT) == whole
