"""gguf_header: reads every field and tensor of a GGUF file as gguf.GGUFReader does, model_shape unchanged by it."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from swarm.gguf_files.gguf_header import DECODED_ARRAY_MAX, GGUFArray, GGUFHeader, Value, read_gguf_header
from swarm.gguf_files.model_shape import KV_BYTES_PER_VALUE, ModelShape, model_shape
from swarm.gguf_files.stage_files import split_model

LONG = DECODED_ARRAY_MAX + 1


def _flat(value: Value) -> list[Any]:
    """A decoded value as GGUFReader's contents() has it: arrays, nested ones too, flattened."""
    if isinstance(value, GGUFArray):
        return [item for inner in value.values() for item in _flat(inner)]
    return [value]


def _element_types(array: GGUFArray) -> list[gguf.GGUFValueType]:
    """The types after ARRAY in GGUFReader's field.types: the element type, then a nested array's own."""
    types = [array.element_type]
    if array.element_type == gguf.GGUFValueType.ARRAY and array.length:
        first = array.values()[0]
        assert isinstance(first, GGUFArray)
        types += _element_types(first)
    return types


def assert_matches_gguf_reader(header: GGUFHeader, path: Path) -> None:
    reader = gguf.GGUFReader(path)
    assert header.version == reader.fields["GGUF.version"].contents()
    assert header.tensor_count == reader.fields["GGUF.tensor_count"].contents() == len(reader.tensors)
    assert header.metadata_count == reader.fields["GGUF.kv_count"].contents()
    assert list(header.fields) == [name for name in reader.fields if not name.startswith("GGUF.")]
    for key, field in header.fields.items():
        expected = reader.fields[key]
        assert field.key == key
        assert field.offset == expected.offset
        assert field.end == expected.offset + sum(int(part.nbytes) for part in expected.parts), key
        assert field.type == expected.types[0], key
        if isinstance(field.value, GGUFArray):
            assert field.value.length == len(expected.data) or field.value.element_type == gguf.GGUFValueType.ARRAY
            if field.value.items is None:
                assert field.value.length > DECODED_ARRAY_MAX
                assert field.value.element_type == expected.types[1], key
            else:
                assert [field.type, *_element_types(field.value)] == expected.types, key
                assert _flat(field.value) == expected.contents(), key
        else:
            assert field.value == expected.contents(), key
            assert type(field.value) is type(expected.contents()), key
    assert header.alignment == reader.alignment
    assert header.data_offset == reader.data_offset
    assert len(header.tensors) == len(reader.tensors)
    for tensor, expected_tensor in zip(header.tensors, reader.tensors, strict=True):
        assert tensor.name == expected_tensor.name
        assert tensor.dims == tuple(expected_tensor.shape.tolist())
        assert tensor.type == expected_tensor.tensor_type
        assert header.data_offset + tensor.offset == expected_tensor.data_offset
        assert tensor.n_elements == expected_tensor.n_elements
        assert tensor.n_bytes == expected_tensor.n_bytes


def shape_by_gguf_reader(path: Path, name: str) -> ModelShape:
    """model_shape as it was computed before gguf_header: through gguf.GGUFReader."""
    reader = gguf.GGUFReader(path)

    def field(key: str) -> int:
        return int(reader.fields[key].parts[-1][0])

    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    n_layers = field(f"{arch}.block_count")
    layer_bytes = [0] * n_layers
    embeddings = head = other = 0
    for tensor in reader.tensors:
        match = re.match(r"^blk\.(\d+)\.", tensor.name)
        if match:
            layer_bytes[int(match.group(1))] += int(tensor.n_bytes)
        elif tensor.name == "token_embd.weight":
            embeddings = int(tensor.n_bytes)
        elif tensor.name == "output.weight":
            head = int(tensor.n_bytes)
        else:
            other += int(tensor.n_bytes)
    hidden = field(f"{arch}.embedding_length")
    head_dim = hidden // field(f"{arch}.attention.head_count")
    if f"{arch}.attention.key_length" in reader.fields:
        head_dim = field(f"{arch}.attention.key_length")
    return ModelShape(
        name=name,
        layer_bytes=tuple(layer_bytes),
        input_bytes=embeddings + other,
        output_bytes=(head or embeddings) + other,
        kv_bytes_per_token=2 * field(f"{arch}.attention.head_count_kv") * head_dim * KV_BYTES_PER_VALUE,
        hidden_size=hidden,
        sliding_window=swa_by_gguf_reader(reader, arch, n_layers),
        architecture=arch,
    )


def swa_by_gguf_reader(reader: gguf.GGUFReader, arch: str, n_layers: int) -> tuple[bool, ...]:
    """The sliding-window flags as stage_files derived them from GGUFReader's fields before gguf_header."""
    found = reader.fields.get(f"{arch}.attention.sliding_window_pattern")
    if found is not None and found.types[0] == gguf.GGUFValueType.ARRAY:
        return tuple(bool(v) for v in found.contents())
    if arch != "gemma3":
        return ()
    period = int(found.contents()) if found is not None else 6
    return tuple(period == 0 or il % period < period - 1 for il in range(n_layers))


def write_every_type(path: Path) -> Path:
    """A GGUF holding each scalar type, a string, bools, short, long and nested arrays and tensors of several ggml
    types (one quantized), at a custom alignment."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_custom_alignment(64)
    writer.add_uint8("t.uint8", 250)
    writer.add_int8("t.int8", -120)
    writer.add_uint16("t.uint16", 65000)
    writer.add_int16("t.int16", -32000)
    writer.add_uint32("t.uint32", 4_000_000_000)
    writer.add_int32("t.int32", -2_000_000_000)
    writer.add_float32("t.float32", 0.1)
    writer.add_uint64("t.uint64", 2**63 + 5)
    writer.add_int64("t.int64", -(2**62))
    writer.add_float64("t.float64", 1e-300)
    writer.add_bool("t.true", True)
    writer.add_bool("t.false", False)
    writer.add_string("t.string", "héllo ▁wörld")
    writer.add_string("t.empty_string", "")
    writer.add_array("t.ints", [3, -1, 4])
    writer.add_array("t.floats", [0.5, -2.25])
    writer.add_array("t.bools", [True, False, True])
    writer.add_array("t.strings", ["a", "", "ünï"])
    writer.add_key_value("t.u8s", [1, 2, 255], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT8)
    writer.add_key_value("t.f64s", [1.5, -1e200], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.FLOAT64)
    writer.add_array("t.nested", [[1, 2], [3, 4, 5]])
    writer.add_array("t.long_strings", [f"tok{i}" * (i % 3) for i in range(LONG)])
    writer.add_array("t.long_floats", [float(i) / 7 for i in range(LONG)])
    writer.add_key_value(
        "t.long_i8s", [i % 100 for i in range(LONG)], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT8
    )
    writer.add_array("t.long_nested", [[i, i + 1] for i in range(LONG)])
    writer.add_tensor("a.f32", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.add_tensor("b.f16", np.ones((2, 5), dtype=np.float16))
    writer.add_tensor("c.i32", np.arange(7, dtype=np.int32))
    # Two rows of 64 Q8_0 values: two 34-byte blocks a row.
    writer.add_tensor("d.q8_0", np.zeros((2, 68), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_every_value_type_reads_as_gguf_reader_reads_it(tmp_path: Path) -> None:
    path = write_every_type(tmp_path / "every.gguf")
    header = read_gguf_header(path)
    assert_matches_gguf_reader(header, path)
    assert header.version == 3 and header.alignment == 64
    long_strings = header.fields["t.long_strings"].value
    assert long_strings == GGUFArray(gguf.GGUFValueType.STRING, LONG, None)
    assert header.fields["t.long_nested"].value == GGUFArray(gguf.GGUFValueType.ARRAY, LONG, None)
    nested = header.fields["t.nested"].value
    assert isinstance(nested, GGUFArray) and nested.values()[1] == GGUFArray(gguf.GGUFValueType.INT32, 3, (3, 4, 5))
    with pytest.raises(ValueError, match="not decoded"):
        header.fields["t.long_floats"].integer()
    assert header.fields["t.ints"].integer(-1) == 4
    assert [t.n_bytes for t in header.tensors] == [48, 20, 28, 136]


def test_synthetic_models_and_stages_read_as_gguf_reader_reads_them(
    tiny_model: Path, slow_model: Path, tmp_path: Path
) -> None:
    manifest = split_model(tiny_model, 2, tmp_path / "stages")
    stages = [tmp_path / "stages" / stage.file for stage in manifest.stages]
    for path in [tiny_model, slow_model, *stages]:
        assert_matches_gguf_reader(read_gguf_header(path), path)


def write_gemma_like(path: Path) -> Path:
    """A small gemma3-like file: per-layer head counts and a sliding-window pattern as arrays, a tied head."""
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_block_count(3)
    writer.add_embedding_length(8)
    writer.add_array("gemma3.attention.head_count", [2, 4, 4])
    writer.add_array("gemma3.attention.head_count_kv", [1, 1, 2])
    writer.add_key_length(16)
    writer.add_array("gemma3.attention.sliding_window_pattern", [True, False, True])
    writer.add_tensor("token_embd.weight", np.zeros((10, 8), dtype=np.float32))
    for layer in range(3):
        writer.add_tensor(f"blk.{layer}.attn_q.weight", np.zeros((8, 8 * (layer + 1)), dtype=np.float16))
    writer.add_tensor("output_norm.weight", np.zeros(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_model_shape_is_what_gguf_reader_made_it(tiny_model: Path, slow_model: Path, tmp_path: Path) -> None:
    gemma_like = write_gemma_like(tmp_path / "gemma-like.gguf")
    for path in (tiny_model, slow_model, gemma_like):
        assert model_shape(path, "m") == shape_by_gguf_reader(path, "m")
    shape = model_shape(gemma_like, "m")
    assert shape.architecture == "gemma3"
    assert shape.sliding_window == (True, False, True)
    assert shape.kv_bytes_per_token == 2 * 2 * 16 * KV_BYTES_PER_VALUE  # the last layer's kv heads, as before
    assert model_shape(tiny_model, "m").architecture == "llama"


def test_a_file_that_is_not_gguf_is_refused_by_name(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("just some text, long enough to hold a header\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(text))}: not a GGUF file .* at byte 0"):
        read_gguf_header(text)
    empty = tmp_path / "empty.gguf"
    empty.touch()
    with pytest.raises(ValueError, match="not a GGUF file"):
        read_gguf_header(empty)
    old = tmp_path / "v1.gguf"
    old.write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    with pytest.raises(ValueError, match="unsupported GGUF version 1 at byte 4"):
        read_gguf_header(old)


def test_a_truncated_file_is_refused_with_the_offset(tiny_model: Path, tmp_path: Path) -> None:
    data = tiny_model.read_bytes()
    header = read_gguf_header(tiny_model)
    cut_header = tmp_path / "cut-header.gguf"
    cut_header.write_bytes(data[:300])
    with pytest.raises(ValueError, match=rf"{re.escape(str(cut_header))}: truncated.* at byte \d+"):
        read_gguf_header(cut_header)
    cut_tokens = tmp_path / "cut-tokens.gguf"
    cut_tokens.write_bytes(data[: header.fields["tokenizer.ggml.tokens"].offset + 100])
    with pytest.raises(ValueError, match="truncated"):
        read_gguf_header(cut_tokens)
    cut_data = tmp_path / "cut-data.gguf"
    cut_data.write_bytes(data[:-1])
    with pytest.raises(ValueError, match=rf"truncated: tensor \S+ ends at byte {len(data)} at byte {len(data) - 1}"):
        read_gguf_header(cut_data)


def test_an_unknown_value_type_is_refused_with_its_offset(tmp_path: Path) -> None:
    key = b"general.mystery"
    path = tmp_path / "mystery.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, len(key)) + key + struct.pack("<I", 99) + b"\0" * 8)
    with pytest.raises(ValueError, match=f"unknown metadata value type 99 at byte {24 + 8 + len(key)}"):
        read_gguf_header(path)


@pytest.mark.slow
def test_gemma_shape_and_vocabulary(gemma_model: Path) -> None:
    shape = model_shape(gemma_model, "gemma")
    assert shape.n_layers == 18 and shape.architecture == "gemma3" and shape.hidden_size == 640
    assert shape.sliding_window == tuple(layer % 6 != 5 for layer in range(18))
    tokens = read_gguf_header(gemma_model).fields["tokenizer.ggml.tokens"].value
    assert tokens == GGUFArray(gguf.GGUFValueType.STRING, 262144, None)
