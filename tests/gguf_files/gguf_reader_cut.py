"""The stage and draft files as split_model and write_early_exit_drafts cut them through gguf.GGUFReader and
gguf.GGUFWriter before gguf_copy: the reference their files must equal byte for byte."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

_BLOCK_TENSOR = re.compile(r"^blk\.(\d+)\.(.+)$")
_PER_LAYER_KEYS = (
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.sliding_window_pattern",
)


@dataclass(frozen=True)
class _Value:
    value: Any
    type: gguf.GGUFValueType
    sub_type: gguf.GGUFValueType | None = None


class GGUFReaderCut:
    """The model read once by GGUFReader; stage() and draft() write one file each as the old code did."""

    def __init__(self, model: Path, source_sha256: str) -> None:
        self.model = model
        self.source_sha256 = source_sha256
        self.reader = gguf.GGUFReader(model)
        field = self.reader.fields["general.architecture"]
        self.arch = bytes(field.parts[field.data[0]]).decode()
        self.metadata = self._metadata()
        self.n_layers = int(self.metadata[f"{self.arch}.block_count"].value)

    def stage(self, path: Path, index: int, count: int, lo: int, hi: int) -> Path:
        meta = self._stage_metadata(index, count, lo, hi)
        self._write(path, meta, self._tensors(first=index == 0, last=index == count - 1, lo=lo, hi=hi))
        return path

    def draft(self, path: Path, layers: int) -> Path:
        meta = self._stage_metadata(0, 1, 0, layers)
        for key in [k for k in meta if k.startswith("swarm.stage.")]:
            del meta[key]
        name = meta.get("general.name")
        label = f"{name.value.decode() if name else self.model.stem} (draft: layers 0-{layers - 1} of {self.n_layers})"
        meta["general.name"] = _Value(label.encode(), gguf.GGUFValueType.STRING)
        meta["swarm.draft.source_block_count"] = _Value(self.n_layers, gguf.GGUFValueType.UINT32)
        meta["swarm.draft.source_sha256"] = _Value(self.source_sha256.encode(), gguf.GGUFValueType.STRING)
        self._write(path, meta, self._tensors(first=True, last=True, lo=0, hi=layers))
        return path

    def _metadata(self) -> dict[str, _Value]:
        metadata: dict[str, _Value] = {}
        for field in self.reader.fields.values():
            if field.name.startswith("GGUF.") or field.name == "general.architecture":
                continue
            kind = gguf.GGUFValueType(field.types[0])
            if kind == gguf.GGUFValueType.ARRAY:
                sub = gguf.GGUFValueType(field.types[1])
                if sub == gguf.GGUFValueType.STRING:
                    items: list[Any] = [bytes(field.parts[i]) for i in field.data]
                else:
                    items = field.contents()
                metadata[field.name] = _Value(items, kind, sub)
            elif kind == gguf.GGUFValueType.STRING:
                metadata[field.name] = _Value(bytes(field.parts[field.data[0]]), kind)
            else:
                metadata[field.name] = _Value(field.contents(), kind)
        return metadata

    def _swa_pattern(self) -> list[bool] | None:
        found = self.metadata.get(f"{self.arch}.attention.sliding_window_pattern")
        if found is not None and found.type == gguf.GGUFValueType.ARRAY:
            return [bool(v) for v in found.value]
        if self.arch != "gemma3":
            return None
        period = int(found.value) if found is not None else 6
        return [period == 0 or il % period < period - 1 for il in range(self.n_layers)]

    def _stage_metadata(self, index: int, count: int, lo: int, hi: int) -> dict[str, _Value]:
        out = dict(self.metadata)
        u32, arch = gguf.GGUFValueType.UINT32, self.arch
        out[f"{arch}.block_count"] = _Value(hi - lo, u32)
        for suffix in _PER_LAYER_KEYS:
            found = self.metadata.get(f"{arch}.{suffix}")
            if found is not None and found.type == gguf.GGUFValueType.ARRAY:
                out[f"{arch}.{suffix}"] = _Value(found.value[lo:hi], found.type, found.sub_type)
        pattern = self._swa_pattern()
        if pattern is not None:
            out[f"{arch}.attention.sliding_window_pattern"] = _Value(
                pattern[lo:hi], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.BOOL
            )
        if 0 < index < count - 1:
            for key in [k for k in out if k.startswith("tokenizer.")]:
                del out[key]
            out["tokenizer.ggml.model"] = _Value(b"none", gguf.GGUFValueType.STRING)
            out[f"{arch}.vocab_size"] = _Value(1, u32)
        for key, value in [
            ("index", index),
            ("count", count),
            ("layer_start", lo),
            ("layer_end", hi),
            ("source_block_count", self.n_layers),
        ]:
            out[f"swarm.stage.{key}"] = _Value(value, u32)
        out["swarm.stage.source_sha256"] = _Value(self.source_sha256.encode(), gguf.GGUFValueType.STRING)
        return out

    def _tensors(self, *, first: bool, last: bool, lo: int, hi: int) -> list[tuple[str, Any, Any]]:
        tensors: list[tuple[str, Any, Any]] = []
        for tensor in self.reader.tensors:
            match = _BLOCK_TENSOR.match(tensor.name)
            if match:
                if lo <= int(match.group(1)) < hi:
                    name = f"blk.{int(match.group(1)) - lo}.{match.group(2)}"
                    tensors.append((name, tensor.data, tensor.tensor_type))
            elif tensor.name == "token_embd.weight":
                data = tensor.data if first or last else tensor.data[:1]
                tensors.append((tensor.name, data, tensor.tensor_type))
            elif tensor.name != "output.weight" or last:
                tensors.append((tensor.name, tensor.data, tensor.tensor_type))
        return tensors

    def _write(self, path: Path, metadata: dict[str, _Value], tensors: list[tuple[str, Any, Any]]) -> None:
        writer = gguf.GGUFWriter(path, self.arch, endianess=self.reader.endianess)
        writer.data_alignment = self.reader.alignment
        for key, item in metadata.items():
            writer.add_key_value(key, item.value, item.type, sub_type=item.sub_type)
        for name, data, kind in tensors:
            writer.add_tensor_info(name, data.shape, data.dtype, data.nbytes, raw_dtype=kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for _, data, _ in tensors:
            writer.write_tensor_data(data, tensor_endianess=self.reader.endianess)
        writer.close()
