"""gguf_copy: stage and draft files are byte for byte what gguf.GGUFReader and gguf.GGUFWriter made of the model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np
import pytest

from swarm.gguf_files.draft_files import _write_drafts
from swarm.gguf_files.gguf_copy import NewValue, write_gguf_copy
from swarm.gguf_files.gguf_header import DECODED_ARRAY_MAX, read_gguf_header
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.hashing import sha256_of
from tests.gguf_files.gguf_reader_cut import GGUFReaderCut
from tests.gguf_files.test_stage_files import write_metadata_model

_STRING, _ARRAY = gguf.GGUFValueType.STRING, gguf.GGUFValueType.ARRAY


def assert_cut_as_gguf_reader_cuts(
    model: Path, ranges: Sequence[tuple[int, int]] | int, drafts: Sequence[int], tmp_path: Path
) -> None:
    """split_model and _write_drafts against GGUFReaderCut, file by file."""
    manifest = split_model(model, ranges, tmp_path / "stages")
    written = _write_drafts(model, drafts, tmp_path / "drafts", False, every_layer_allowed=True)
    reference = GGUFReaderCut(model, sha256_of(model))
    count = len(manifest.stages)
    for stage in manifest.stages:
        expected = reference.stage(tmp_path / "expected.gguf", stage.index, count, stage.layer_start, stage.layer_end)
        assert (tmp_path / "stages" / stage.file).read_bytes() == expected.read_bytes(), stage.file
    for draft in written:
        expected = reference.draft(tmp_path / "expected.gguf", draft.layers)
        assert draft.path.read_bytes() == expected.read_bytes(), draft.path.name


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny4") / "tiny.gguf", seed=0, n_layer=4)


@pytest.mark.parametrize("stages", [1, 2, 3, [(0, 3), (3, 4)]])
def test_synthetic_stages_and_drafts(tiny4: Path, stages: int | list[tuple[int, int]], tmp_path: Path) -> None:
    assert_cut_as_gguf_reader_cuts(tiny4, stages, [1, 3], tmp_path)


def test_a_larger_synthetic_model(slow_model: Path, tmp_path: Path) -> None:
    assert_cut_as_gguf_reader_cuts(slow_model, 3, [5], tmp_path)


def test_per_layer_arrays_are_cut_as_before(tmp_path: Path) -> None:
    heads = list(range(1, 15))
    gemma = write_metadata_model(
        tmp_path / "g.gguf", "gemma3", 14, attention__head_count=heads, attention__head_count_kv=heads
    )
    assert_cut_as_gguf_reader_cuts(gemma, [(0, 4), (4, 9), (9, 14)], [7, 14], tmp_path / "gemma")
    llama = write_metadata_model(tmp_path / "l.gguf", "llama", 6, feed_forward_length=[8] * 6)
    assert_cut_as_gguf_reader_cuts(llama, 3, [2], tmp_path / "llama")


def write_varied_model(path: Path) -> Path:
    """A gemma3 file unlike the synthetic llama: 64-byte alignment, a sliding-window period as a scalar, a long
    token list with texts that are not UTF-8, a general.name, and a quantized (Q8_0) token embedding."""
    n_vocab = DECODED_ARRAY_MAX + 3
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_custom_alignment(64)
    writer.add_name("varied")
    writer.add_block_count(5)
    writer.add_embedding_length(32)
    writer.add_uint32("gemma3.attention.sliding_window_pattern", 3)
    writer.add_array("gemma3.attention.head_count_kv", [1, 2, 1, 2, 1])
    tokens = [b"\xff\xfe" if i % 7 == 0 else f"t{i}".encode() for i in range(n_vocab)]
    writer.add_key_value("tokenizer.ggml.tokens", tokens, _ARRAY, sub_type=_STRING)
    writer.add_array("tokenizer.ggml.scores", [float(i) / 3 for i in range(n_vocab)])
    writer.add_string("tokenizer.ggml.model", "llama")
    writer.add_uint32("tokenizer.ggml.bos_token_id", 1)
    # One row of 32 Q8_0 values: one 34-byte block.
    embedding = np.arange(n_vocab * 34, dtype=np.uint64).astype(np.uint8).reshape(n_vocab, 34)
    writer.add_tensor("token_embd.weight", embedding, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    for layer in range(5):
        writer.add_tensor(f"blk.{layer}.attn_norm.weight", np.full(32, layer, dtype=np.float32))
        writer.add_tensor(f"blk.{layer}.attn_q.weight", np.full((3, 32), layer, dtype=np.float16))
    writer.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    writer.add_tensor("output.weight", np.ones((7, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_varied_model_is_cut_as_before(tmp_path: Path) -> None:
    model = write_varied_model(tmp_path / "varied.gguf")
    assert_cut_as_gguf_reader_cuts(model, [(0, 1), (1, 3), (3, 5)], [2], tmp_path / "cut")
    middle = read_gguf_header(tmp_path / "cut" / "stages" / "varied.stage1-of-3.gguf")
    embedding = next(t for t in middle.tensors if t.name == "token_embd.weight")
    assert (embedding.dims, embedding.n_bytes) == ((32, 1), 34)


def test_a_metadata_entry_under_another_key_is_refused(tiny4: Path, tmp_path: Path) -> None:
    fields = read_gguf_header(tiny4).fields
    with pytest.raises(ValueError, match=r"general\.name given the source's field llama\.block_count"):
        write_gguf_copy(tmp_path / "x.gguf", tiny4, "llama", 32, {"general.name": fields["llama.block_count"]}, [])
    with pytest.raises(ValueError, match="element type"):
        write_gguf_copy(tmp_path / "x.gguf", tiny4, "llama", 32, {"a": NewValue([1], _ARRAY)}, [])
