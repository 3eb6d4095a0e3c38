"""gguf_copy: write a GGUF file made of parts of another: its metadata fields as stored, new values, tensor bytes.

gguf.GGUFWriter packs each item of a metadata array in Python, from values gguf.GGUFReader first decoded one
by one: over Gemma 3's 262,144-entry tokenizer arrays the two take 15-25 s. Here a field the new file keeps
unchanged is copied as the bytes the source stores it in, and a tensor as its byte range of the source file.
The layout is GGUFWriter's byte for byte, so a stage file is the same bytes as when GGUFWriter wrote it:
version 3, general.architecture first, then the metadata in the order given, the tensor table with each
tensor's offset padded to the alignment, zeros up to the aligned data section, and each tensor's data padded
with zeros to the alignment. Little-endian only, as gguf_header reads.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

import gguf

from swarm.gguf_files.gguf_header import SCALAR_FORMATS, MetadataField

__all__ = ["CopiedTensor", "MetadataEntry", "NewValue", "write_gguf_copy"]

_VT = gguf.GGUFValueType
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# Tensor data goes out in pieces this size: the progress bar moves within a large embedding.
_COPY_CHUNK = 16 << 20


@dataclass(frozen=True)
class NewValue:
    """A metadata value the source does not hold: a scalar, a STRING as str or bytes (token texts need not be
    UTF-8), or an ARRAY of scalars or strings of type sub_type."""

    value: Any
    type: gguf.GGUFValueType
    sub_type: gguf.GGUFValueType | None = None


# A source field, copied as stored, or a new value.
MetadataEntry: TypeAlias = "MetadataField | NewValue"


@dataclass(frozen=True)
class CopiedTensor:
    """A tensor of the new file: its name and dims there (fastest-varying first), its ggml type, and its data:
    the n_bytes at file_offset of the source (from the start of the file, not of its data section)."""

    name: str
    dims: tuple[int, ...]
    type: gguf.GGMLQuantizationType
    file_offset: int
    n_bytes: int


def write_gguf_copy(
    path: Path,
    source: Path,
    architecture: str,
    alignment: int,
    metadata: Mapping[str, MetadataEntry],
    tensors: Sequence[CopiedTensor],
    progress: bool = False,
) -> None:
    """Writes the GGUF file at path: general.architecture, then metadata (a MetadataField of source copied as
    stored), then tensors, their data copied from source."""
    # A memoryview slices the map without copying (and is released before the map closes, as it must be).
    with (
        source.open("rb") as file,
        mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buffer,
        memoryview(buffer) as view,
        path.open("wb") as out,
    ):
        out.write(_header(len(tensors), len(metadata) + 1))
        out.write(_string(gguf.Keys.General.ARCHITECTURE) + _encode(NewValue(architecture, _VT.STRING)))
        for key, entry in metadata.items():
            if isinstance(entry, MetadataField):
                if entry.key != key:
                    raise ValueError(f"metadata {key} given the source's field {entry.key}")
                out.write(view[entry.offset : entry.end])
            else:
                out.write(_string(key) + _encode(entry))
        out.write(_tensor_table(tensors, alignment))
        out.write(bytes(_padding(out.tell(), alignment)))
        _copy_data(out, view, tensors, alignment, path.name, progress)


def _header(tensor_count: int, kv_count: int) -> bytes:
    return struct.pack("<IIQQ", gguf.GGUF_MAGIC, gguf.GGUF_VERSION, tensor_count, kv_count)


def _padding(size: int, alignment: int) -> int:
    return -size % alignment


def _string(value: str | bytes) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return _U64.pack(len(data)) + data


def _scalar(kind: gguf.GGUFValueType, value: Any) -> bytes:
    if kind == _VT.STRING:
        return _string(value)
    if kind == _VT.ARRAY:
        raise ValueError("a nested metadata array cannot be written as a new value")
    return struct.pack(f"<{SCALAR_FORMATS[kind]}", value)


def _encode(entry: NewValue) -> bytes:
    """The value's type tag and its bytes, as GGUFWriter packs them."""
    if entry.type != _VT.ARRAY:
        return _U32.pack(entry.type) + _scalar(entry.type, entry.value)
    if entry.sub_type is None:
        raise ValueError("a new metadata array needs its element type")
    if not entry.value:
        raise ValueError("a metadata array cannot be empty")  # GGUFWriter refuses one too
    items = b"".join(_scalar(entry.sub_type, item) for item in entry.value)
    return _U32.pack(_VT.ARRAY) + _U32.pack(entry.sub_type) + _U64.pack(len(entry.value)) + items


def _tensor_table(tensors: Sequence[CopiedTensor], alignment: int) -> bytes:
    table = bytearray()
    offset = 0
    for tensor in tensors:
        table += _string(tensor.name) + _U32.pack(len(tensor.dims))
        table += struct.pack(f"<{len(tensor.dims)}Q", *tensor.dims)
        table += _U32.pack(tensor.type) + _U64.pack(offset)
        offset += tensor.n_bytes + _padding(tensor.n_bytes, alignment)
    return bytes(table)


def _copy_data(
    out: BinaryIO, view: memoryview, tensors: Sequence[CopiedTensor], alignment: int, name: str, progress: bool
) -> None:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc=name, total=sum(t.n_bytes for t in tensors), unit="B", unit_scale=True)
    try:
        for tensor in tensors:
            end = tensor.file_offset + tensor.n_bytes
            if end > len(view):
                raise ValueError(f"tensor {tensor.name} ends at byte {end}, past the source's {len(view)}")
            # Pages of the source's map stream through the page cache: no tensor is held in memory whole.
            for start in range(tensor.file_offset, end, _COPY_CHUNK):
                piece = min(_COPY_CHUNK, end - start)
                out.write(view[start : start + piece])
                if bar is not None:
                    bar.update(piece)
            out.write(bytes(_padding(tensor.n_bytes, alignment)))
    finally:
        if bar is not None:
            bar.close()
