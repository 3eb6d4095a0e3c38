"""gguf_header: a fast read-only reader of a GGUF file's metadata and tensor table, without its tensor data.

gguf.GGUFReader builds a numpy view of every element of every metadata array, which over Gemma 3's
262,144-entry tokenizer arrays takes tens of seconds. This reader decodes scalars, strings and short arrays
(per-layer head counts, sliding-window patterns) and steps over long ones (token texts, scores, types),
reading of them only the string lengths it needs to find their end. GGUF v2 and v3, little-endian.
"""

from __future__ import annotations

import math
import mmap
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TypeAlias

import gguf

__all__ = [
    "DECODED_ARRAY_MAX",
    "SCALAR_FORMATS",
    "GGUFArray",
    "GGUFHeader",
    "MetadataField",
    "TensorInfo",
    "Value",
    "read_gguf_header",
]

SUPPORTED_VERSIONS = (2, 3)
# Arrays longer than this keep only their element type and length: per-layer arrays are far shorter,
# tokenizer arrays far longer.
DECODED_ARRAY_MAX = 4096

_VT = gguf.GGUFValueType
# The struct format of each scalar value type, little-endian once prefixed with "<".
SCALAR_FORMATS: dict[gguf.GGUFValueType, str] = {
    _VT.UINT8: "B",
    _VT.INT8: "b",
    _VT.UINT16: "H",
    _VT.INT16: "h",
    _VT.UINT32: "I",
    _VT.INT32: "i",
    _VT.FLOAT32: "f",
    _VT.BOOL: "?",
    _VT.UINT64: "Q",
    _VT.INT64: "q",
    _VT.FLOAT64: "d",
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

Value: TypeAlias = "int | float | bool | str | GGUFArray"


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array: its element type, its length and, unless it is longer than DECODED_ARRAY_MAX, its items
    (a nested array's items are GGUFArrays)."""

    element_type: gguf.GGUFValueType
    length: int
    items: tuple[Value, ...] | None

    def values(self) -> tuple[Value, ...]:
        """The items; a ValueError for an array too long to have been decoded."""
        if self.items is None:
            raise ValueError(f"a {self.length}-element array is not decoded (over {DECODED_ARRAY_MAX} elements)")
        return self.items


@dataclass(frozen=True)
class MetadataField:
    """One key/value pair of the metadata, stored (key, type, value) in the file's bytes [offset, end): a file cut
    from this one copies the fields it keeps unchanged from there, long arrays that were never decoded included."""

    key: str
    type: gguf.GGUFValueType
    value: Value
    offset: int
    end: int

    def integer(self, index: int = 0) -> int:
        """The value as an int; of a per-layer array (head counts that differ by layer), its item at index."""
        item = self.value.values()[index] if isinstance(self.value, GGUFArray) else self.value
        if isinstance(item, GGUFArray | str):
            raise ValueError(f"metadata {self.key} is not a number: {item!r}")
        return int(item)


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table. dims as stored, fastest-varying first (GGUFReader's ``shape``); offset from
    the start of the data section; n_bytes as gguf computes it from the type's block and type sizes."""

    name: str
    dims: tuple[int, ...]
    type: gguf.GGMLQuantizationType
    offset: int
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class GGUFHeader:
    """All of a GGUF file but its tensor data. data_offset: where the (aligned) data section starts."""

    path: Path
    version: int
    fields: Mapping[str, MetadataField]
    tensors: tuple[TensorInfo, ...]
    alignment: int
    data_offset: int

    @property
    def tensor_count(self) -> int:
        return len(self.tensors)

    @property
    def metadata_count(self) -> int:
        return len(self.fields)


class _Cursor:
    """Reads little-endian values from a buffer, turning any read past its end into a ValueError that names the
    file and the byte offset."""

    def __init__(self, path: Path, buffer: mmap.mmap) -> None:
        self.path = path
        self.buffer = buffer
        self.size = len(buffer)
        self.pos = 0

    def error(self, what: str, at: int | None = None) -> ValueError:
        return ValueError(f"{self.path}: {what} at byte {self.pos if at is None else at}")

    def _need(self, n: int) -> int:
        start = self.pos
        if start + n > self.size:
            raise self.error(f"truncated: {n} bytes wanted, {self.size - start} left")
        self.pos = start + n
        return start

    def u32(self) -> int:
        return int(_U32.unpack_from(self.buffer, self._need(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self.buffer, self._need(8))[0])

    def unpack(self, fmt: str, count: int) -> tuple[int | float | bool, ...]:
        start = self._need(count * struct.calcsize(f"<{fmt}"))
        return struct.unpack_from(f"<{count}{fmt}", self.buffer, start)

    def string(self) -> str:
        length = self.u64()
        start = self._need(length)
        # Token texts need not be valid UTF-8: a stray byte must not make the whole file unreadable.
        return self.buffer[start : start + length].decode("utf-8", "replace")

    def skip(self, n: int) -> None:
        self._need(n)

    def skip_strings(self, count: int) -> None:
        """Steps over count strings reading only their lengths, neither copying nor decoding their text: a
        262,144-token vocabulary costs tens of milliseconds."""
        buffer, pos, size, unpack = self.buffer, self.pos, self.size, _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise self.error("truncated string array", at=min(pos, size))
            pos += 8 + unpack(buffer, pos)[0]
        if pos > size:
            raise self.error("truncated string array", at=size)
        self.pos = pos


def _value_type(cursor: _Cursor) -> gguf.GGUFValueType:
    at = cursor.pos
    raw = cursor.u32()
    try:
        return gguf.GGUFValueType(raw)
    except ValueError:
        raise cursor.error(f"unknown metadata value type {raw}", at=at) from None


def _value(cursor: _Cursor, kind: gguf.GGUFValueType) -> Value:
    if kind == _VT.STRING:
        return cursor.string()
    if kind == _VT.ARRAY:
        return _array(cursor)
    return cursor.unpack(SCALAR_FORMATS[kind], 1)[0]


def _array(cursor: _Cursor) -> GGUFArray:
    element = _value_type(cursor)
    length = cursor.u64()
    decode = length <= DECODED_ARRAY_MAX
    items: tuple[Value, ...] | None = None
    if element == _VT.ARRAY:
        # Each nested array has its own element type and length: there is no skipping them without a walk.
        nested = tuple(_array(cursor) for _ in range(length))
        items = nested if decode else None
    elif element == _VT.STRING:
        if decode:
            items = tuple(cursor.string() for _ in range(length))
        else:
            cursor.skip_strings(length)
    else:
        fmt = SCALAR_FORMATS[element]
        if decode:
            items = cursor.unpack(fmt, length)
        else:
            cursor.skip(length * struct.calcsize(f"<{fmt}"))
    return GGUFArray(element, length, items)


def _tensor_info(cursor: _Cursor) -> TensorInfo:
    name = cursor.string()
    n_dims = cursor.u32()
    dims = tuple(int(d) for d in cursor.unpack("Q", n_dims))
    at = cursor.pos
    raw_type = cursor.u32()
    try:
        kind = gguf.GGMLQuantizationType(raw_type)
    except ValueError:
        raise cursor.error(f"tensor {name} has unknown ggml type {raw_type}", at=at) from None
    offset = cursor.u64()
    n_elements = math.prod(dims)
    block_size, type_size = gguf.GGML_QUANT_SIZES[kind]
    return TensorInfo(name, dims, kind, offset, n_elements, n_elements * type_size // block_size)


def _alignment(cursor: _Cursor, fields: Mapping[str, MetadataField]) -> int:
    found = fields.get("general.alignment")
    if found is None:
        return gguf.GGUF_DEFAULT_ALIGNMENT
    alignment = found.value
    if found.type != _VT.UINT32 or not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise cursor.error(f"general.alignment must be a power of two as a uint32, not {alignment!r}", found.offset)
    return alignment


def _read(cursor: _Cursor) -> GGUFHeader:
    if cursor.size < 4 or cursor.buffer[:4] != b"GGUF":
        raise cursor.error("not a GGUF file (no GGUF magic)")
    cursor.skip(4)
    version = cursor.u32()
    if version & 0xFFFF == 0:  # what a file written on a big-endian machine looks like read little-endian
        raise cursor.error("big-endian GGUF files are not supported", at=4)
    if version not in SUPPORTED_VERSIONS:
        raise cursor.error(f"unsupported GGUF version {version}", at=4)
    tensor_count = cursor.u64()
    kv_count = cursor.u64()
    fields: dict[str, MetadataField] = {}
    for _ in range(kv_count):
        offset = cursor.pos
        key = cursor.string()
        if key in fields:
            raise cursor.error(f"duplicate metadata key {key}", at=offset)
        kind = _value_type(cursor)
        value = _value(cursor, kind)
        fields[key] = MetadataField(key, kind, value, offset, cursor.pos)
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    for _ in range(tensor_count):
        at = cursor.pos
        tensor = _tensor_info(cursor)
        if tensor.name in names:
            raise cursor.error(f"duplicate tensor {tensor.name}", at=at)
        names.add(tensor.name)
        tensors.append(tensor)
    alignment = _alignment(cursor, fields)
    data_offset = -(-cursor.pos // alignment) * alignment
    # A download cut short loses tensor data, not header: catch it here rather than in llama.cpp's loader.
    for tensor in tensors:
        end = data_offset + tensor.offset + tensor.n_bytes
        if end > cursor.size:
            raise cursor.error(f"truncated: tensor {tensor.name} ends at byte {end}", at=cursor.size)
    return GGUFHeader(cursor.path, version, MappingProxyType(fields), tuple(tensors), alignment, data_offset)


def read_gguf_header(path: Path) -> GGUFHeader:
    """The metadata and tensor table of the GGUF file at path; a ValueError naming the file and byte offset where
    it is not GGUF, is truncated or holds a value type this reader does not know."""
    path = Path(path)
    with path.open("rb") as file:
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: not a GGUF file (empty) at byte 0")
        # A memory map reads only the pages the header spans, however large the tensor data behind it.
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            return _read(_Cursor(path, buffer))
