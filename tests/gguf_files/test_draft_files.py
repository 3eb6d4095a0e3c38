"""Early-exit draft files: llama-cpp-python loads them as ordinary models, and a draft of every layer is the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import pytest

from swarm.engine.llama_adapter import LlamaModel
from swarm.gguf_files.draft_files import _write_drafts, write_early_exit_drafts
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.hashing import sha256_of
from tests.gguf_files.test_stage_files import write_metadata_model

PROMPT = "The quick brown fox"


def field(path: Path, key: str) -> Any:
    found = gguf.GGUFReader(path).get_field(key)
    return None if found is None else found.contents()


def greedy_text(path: Path, prompt: str = PROMPT, tokens: int = 16) -> str:
    """What plain llama-cpp-python makes of the file: an ordinary model, greedy."""
    model = llama_cpp.Llama(str(path), n_ctx=256, n_threads=2, verbose=False)
    try:
        text = model(prompt, max_tokens=tokens, temperature=0.0)["choices"][0]["text"]
    finally:
        model.close()
    return str(text)


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny4") / "tiny.gguf", seed=0, n_layer=4)


def test_a_draft_of_all_but_one_layer_loads_and_generates(tiny4: Path, tmp_path: Path) -> None:
    (draft,) = write_early_exit_drafts(tiny4, [3], tmp_path)
    assert (draft.layers, draft.source_block_count) == (3, 4)
    assert draft.path.stat().st_size == draft.bytes
    assert field(draft.path, "llama.block_count") == 3
    assert field(draft.path, "swarm.draft.source_block_count") == 4
    assert field(draft.path, "swarm.draft.source_sha256") == sha256_of(tiny4)
    # A worker serves a file with swarm.stage.* keys as a pipeline stage: a draft must have none.
    assert not [name for name in gguf.GGUFReader(draft.path).fields if name.startswith("swarm.stage.")]
    model = LlamaModel(draft.path)
    try:
        assert (model.n_layer, model.stage) == (3, None)
    finally:
        model.close()
    reader = gguf.GGUFReader(draft.path)
    assert {t.name for t in reader.tensors} >= {"token_embd.weight", "output_norm.weight", "output.weight"}
    assert not [t.name for t in reader.tensors if t.name.startswith("blk.3.")]
    text = greedy_text(draft.path)
    assert len(text.split()) > 3
    assert text != greedy_text(tiny4)  # the missing layer changes what it says


def test_a_draft_of_every_layer_is_the_whole_model(tiny4: Path, tmp_path: Path) -> None:
    # The same function with N = n_layers (which the CLI refuses): the embedding, output norm and head
    # are carried right exactly when the greedy text equals the source's.
    (draft,) = _write_drafts(tiny4, [4], tmp_path, False, every_layer_allowed=True)
    whole = greedy_text(tiny4, tokens=24)
    assert len(set(whole.split())) > 3
    assert greedy_text(draft.path, tokens=24) == whole


def test_draft_layers_out_of_range_and_stage_files_are_refused(tiny4: Path, tmp_path: Path) -> None:
    for layers in (0, 4, 5):
        with pytest.raises(ValueError, match=f"keeps 1 to 3 layers, not {layers}"):
            write_early_exit_drafts(tiny4, [2, layers], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing is written before every N is checked
    manifest = split_model(tiny4, 2, tmp_path / "stages")
    with pytest.raises(ValueError, match="pipeline stage file"):
        write_early_exit_drafts(tmp_path / "stages" / manifest.stages[0].file, [1], tmp_path)


def test_several_drafts_from_one_read(tiny4: Path, tmp_path: Path) -> None:
    drafts = write_early_exit_drafts(tiny4, [1, 2, 3], tmp_path)
    assert [field(d.path, "llama.block_count") for d in drafts] == [1, 2, 3]
    assert [d.path.name for d in drafts] == [f"tiny.draft{n}-of-4.gguf" for n in (1, 2, 3)]
    assert drafts[0].bytes < drafts[1].bytes < drafts[2].bytes


def test_per_layer_metadata_is_cut_to_the_draft(tmp_path: Path) -> None:
    heads = list(range(1, 15))
    gemma = write_metadata_model(
        tmp_path / "g.gguf", "gemma3", 14, attention__head_count=heads, attention__head_count_kv=heads
    )
    (draft,) = write_early_exit_drafts(gemma, [7], tmp_path / "draft")
    assert field(draft.path, "gemma3.block_count") == 7
    assert field(draft.path, "gemma3.attention.head_count") == heads[:7]
    assert field(draft.path, "gemma3.attention.head_count_kv") == heads[:7]
    # llama.cpp's default for gemma3 (period 6, the last layer of each period global), written out.
    assert field(draft.path, "gemma3.attention.sliding_window_pattern") == [il % 6 < 5 for il in range(7)]
