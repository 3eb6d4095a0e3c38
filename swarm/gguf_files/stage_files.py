"""Pipeline stage files: split a GGUF model into per-stage GGUFs of contiguous layer ranges, plus a manifest.

Each stage file is a model llama.cpp loads on its own. Stage i keeps blocks [lo, hi) of the source,
renumbered from 0, with ``{arch}.block_count = hi - lo`` and the per-layer hyper-parameters of those
blocks. The first stage keeps the token embedding and the tokenizer (it takes tokens); the last keeps
the output norm and head (it makes logits; a model with a tied head keeps the full token embedding as
the head). A middle stage takes and returns hidden states only, so it carries no vocabulary: tokenizer
model ``none``, ``{arch}.vocab_size = 1`` and a one-row token embedding, which llama.cpp's loader
still insists on. Tensor data is streamed from the memory-mapped source, never held in RAM whole.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import gguf

from swarm.gguf_files.gguf_copy import CopiedTensor, MetadataEntry, NewValue, write_gguf_copy
from swarm.gguf_files.gguf_header import GGUFArray, GGUFHeader, MetadataField, read_gguf_header
from swarm.shared.hashing import sha256_of

__all__ = [
    "MANIFEST_NAME",
    "SUPPORTED_ARCHITECTURES",
    "StageFile",
    "StageManifest",
    "UnsupportedArchitecture",
    "split_model",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
SUPPORTED_ARCHITECTURES = frozenset({"llama", "qwen2", "qwen3", "gemma3"})

# Per-layer arrays llama.cpp reads with get_key_or_arr / get_arr; an array must have exactly
# block_count entries, so a stage keeps the slice of its own layers.
_PER_LAYER_KEYS = (
    gguf.Keys.LLM.FEED_FORWARD_LENGTH,
    gguf.Keys.Attention.HEAD_COUNT,
    gguf.Keys.Attention.HEAD_COUNT_KV,
    gguf.Keys.Attention.SLIDING_WINDOW_PATTERN,
)
# llama.cpp's built-in sliding-window period where a file names none: every Nth layer is global.
_DEFAULT_SWA_PERIOD = {"gemma3": 6}
_BLOCK_TENSOR = re.compile(r"^blk\.(\d+)\.(.+)$")
_TOKEN_EMBD = "token_embd.weight"
_OUTPUT = "output.weight"


class UnsupportedArchitecture(ValueError):
    """The model's architecture is not one whose stage files this module knows how to write."""

    def __init__(self, architecture: str) -> None:
        supported = ", ".join(sorted(SUPPORTED_ARCHITECTURES))
        super().__init__(f"cannot split a {architecture!r} model into stages (supported: {supported})")
        self.architecture = architecture


@dataclass(frozen=True)
class StageFile:
    """One stage: its file (relative to the manifest's folder) and the source layers [layer_start, layer_end)."""

    index: int
    file: str
    layer_start: int
    layer_end: int
    bytes: int
    sha256: str

    @property
    def n_layers(self) -> int:
        return self.layer_end - self.layer_start


@dataclass(frozen=True)
class StageManifest:
    """What split_model wrote: the source model and its stages in pipeline order."""

    model: str
    architecture: str
    n_layers: int
    embedding_length: int
    source_file: str
    source_sha256: str
    stages: tuple[StageFile, ...]

    def to_json(self) -> str:
        return json.dumps({"format": MANIFEST_FORMAT, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StageManifest:
        data = json.loads(text)
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unknown stage manifest format {data.get('format')!r}")
        return cls(
            model=str(data["model"]),
            architecture=str(data["architecture"]),
            n_layers=int(data["n_layers"]),
            embedding_length=int(data["embedding_length"]),
            source_file=str(data["source_file"]),
            source_sha256=str(data["source_sha256"]),
            stages=tuple(StageFile(**stage) for stage in data["stages"]),
        )


def split_model(
    model: Path, stages: int | Sequence[tuple[int, int]], out_dir: Path, progress: bool = False
) -> StageManifest:
    """Writes one GGUF per stage and manifest.json into out_dir; returns the manifest.

    ``stages`` is a stage count (layers split as evenly as possible) or the layer ranges
    [start, end) themselves, contiguous from layer 0 to the last layer.
    """
    # The header alone, long arrays stepped over: gguf.GGUFReader takes 15-25 s over a large vocabulary.
    header = read_gguf_header(model)
    arch = supported_architecture(header)
    n_layers = header.fields[_key(gguf.Keys.LLM.BLOCK_COUNT, arch)].integer()
    n_embd = header.fields[_key(gguf.Keys.LLM.EMBEDDING_LENGTH, arch)].integer()
    ranges = _layer_ranges(stages, n_layers)
    source_sha256 = sha256_of(model)
    name = model_name(header, model)

    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[StageFile] = []
    for index, (lo, hi) in enumerate(ranges):
        path = out_dir / f"{model.stem}.stage{index}-of-{len(ranges)}.gguf"
        stage_meta = stage_metadata(header, arch, n_layers, index, len(ranges), lo, hi, source_sha256)
        tensors = stage_tensors(header, n_layers, first=index == 0, last=index == len(ranges) - 1, lo=lo, hi=hi)
        write_gguf_copy(path, model, arch, header.alignment, stage_meta, tensors, progress)
        files.append(StageFile(index, path.name, lo, hi, path.stat().st_size, sha256_of(path)))
        log.info("stage %d/%d: layers [%d, %d) -> %s (%d bytes)", index + 1, len(ranges), lo, hi, path, files[-1].bytes)

    manifest = StageManifest(name, arch, n_layers, n_embd, model.name, source_sha256, tuple(files))
    (out_dir / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def link_whole_model(model: Path, out_dir: Path) -> StageManifest:
    """A one-stage manifest in out_dir whose stage is the model file itself, linked rather than cut: a node
    serving the whole model downloads the original, and no copy of it is written or hashed twice."""
    header = read_gguf_header(model)  # the header alone: GGUFReader takes seconds over a large vocabulary
    arch = str(header.fields[gguf.Keys.General.ARCHITECTURE].value)
    n_layers = header.fields[_key(gguf.Keys.LLM.BLOCK_COUNT, arch)].integer()
    n_embd = header.fields[_key(gguf.Keys.LLM.EMBEDDING_LENGTH, arch)].integer()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / model.name
    path.unlink(missing_ok=True)
    try:
        path.hardlink_to(model)
    except OSError:  # another file system, or one without hard links
        path.symlink_to(model.resolve())
    source_sha256 = sha256_of(model)
    stage = StageFile(0, path.name, 0, n_layers, path.stat().st_size, source_sha256)
    manifest = StageManifest(model_name(header, model), arch, n_layers, n_embd, model.name, source_sha256, (stage,))
    (out_dir / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def _layer_ranges(stages: int | Sequence[tuple[int, int]], n_layers: int) -> list[tuple[int, int]]:
    if isinstance(stages, int):
        if not 1 <= stages <= n_layers:
            raise ValueError(f"cannot split {n_layers} layers into {stages} stages")
        bounds = [i * n_layers // stages for i in range(stages + 1)]
        return list(itertools.pairwise(bounds))
    ranges = [(int(lo), int(hi)) for lo, hi in stages]
    expected_start = 0
    for lo, hi in ranges:
        if lo != expected_start or hi <= lo:
            raise ValueError(f"stage layer ranges must be non-empty and contiguous from 0: {ranges}")
        expected_start = hi
    if not ranges or expected_start != n_layers:
        raise ValueError(f"stage layer ranges must cover all {n_layers} layers: {ranges}")
    return ranges


def _key(template: str, arch: str) -> str:
    return template.format(arch=arch)


def supported_architecture(header: GGUFHeader) -> str:
    """The model's general.architecture; UnsupportedArchitecture where this module cannot cut it."""
    found = header.fields.get(gguf.Keys.General.ARCHITECTURE)
    if found is None or not isinstance(found.value, str):
        raise ValueError(f"{header.path}: GGUF file has no {gguf.Keys.General.ARCHITECTURE} string")
    if found.value not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitecture(found.value)
    return found.value


def model_name(header: GGUFHeader, model: Path) -> str:
    """general.name, or the file's stem where the model has none."""
    found = header.fields.get(gguf.Keys.General.NAME)
    return str(found.value) if found is not None else model.stem


def _swa_pattern(fields: Mapping[str, MetadataField], arch: str, n_layers: int) -> list[bool] | None:
    """Per-layer sliding-window flags, as llama.cpp's load_swa_pattern would derive them for the whole model."""
    found = fields.get(_key(gguf.Keys.Attention.SLIDING_WINDOW_PATTERN, arch))
    if found is not None and isinstance(found.value, GGUFArray):
        return [bool(v) for v in found.value.values()]
    if arch not in _DEFAULT_SWA_PERIOD:
        return None
    period = found.integer() if found is not None else _DEFAULT_SWA_PERIOD[arch]
    # llama_hparams::set_swa_pattern with dense_first = false: the last layer of each period is global.
    return [period == 0 or il % period < period - 1 for il in range(n_layers)]


def sliding_window_layers(header: GGUFHeader, arch: str, n_layers: int) -> tuple[bool, ...]:
    """Which layers attend through a sliding window; empty when the architecture has none. llama.cpp refuses to
    load a stage of such a model whose layers are all global."""
    return tuple(_swa_pattern(header.fields, arch, n_layers) or ())


def stage_metadata(
    header: GGUFHeader,
    arch: str,
    n_layers: int,
    index: int,
    count: int,
    lo: int,
    hi: int,
    source_sha256: str,
) -> dict[str, MetadataEntry]:
    """The metadata of stage index of count, layers [lo, hi), in the order written: the source's own fields
    (but general.architecture, which the writer puts first) with the per-layer ones cut, then swarm.stage.*."""
    out: dict[str, MetadataEntry] = {
        key: field for key, field in header.fields.items() if key != gguf.Keys.General.ARCHITECTURE
    }
    u32 = gguf.GGUFValueType.UINT32
    out[_key(gguf.Keys.LLM.BLOCK_COUNT, arch)] = NewValue(hi - lo, u32)
    for template in _PER_LAYER_KEYS:
        key = _key(template, arch)
        found = header.fields.get(key)
        if found is not None and isinstance(found.value, GGUFArray):
            if found.value.length != n_layers:
                raise ValueError(f"{key} has {found.value.length} entries for {n_layers} layers")
            out[key] = NewValue(found.value.values()[lo:hi], found.type, found.value.element_type)
    pattern = _swa_pattern(header.fields, arch, n_layers)
    if pattern is not None:
        key = _key(gguf.Keys.Attention.SLIDING_WINDOW_PATTERN, arch)
        out[key] = NewValue(pattern[lo:hi], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.BOOL)
    if 0 < index < count - 1:  # a middle stage: no vocabulary at all
        for key in [k for k in out if k.startswith("tokenizer.")]:
            del out[key]
        out[gguf.Keys.Tokenizer.MODEL] = NewValue(b"none", gguf.GGUFValueType.STRING)
        out[_key(gguf.Keys.LLM.VOCAB_SIZE, arch)] = NewValue(1, u32)
    out["swarm.stage.index"] = NewValue(index, u32)
    out["swarm.stage.count"] = NewValue(count, u32)
    out["swarm.stage.layer_start"] = NewValue(lo, u32)
    out["swarm.stage.layer_end"] = NewValue(hi, u32)
    out["swarm.stage.source_block_count"] = NewValue(n_layers, u32)
    out["swarm.stage.source_sha256"] = NewValue(source_sha256.encode(), gguf.GGUFValueType.STRING)
    return out


def stage_tensors(
    header: GGUFHeader, n_layers: int, *, first: bool, last: bool, lo: int, hi: int
) -> list[CopiedTensor]:
    """Every tensor the stage keeps, in source order, named as in the stage file, with its bytes in the source."""
    tensors: list[CopiedTensor] = []
    for tensor in header.tensors:
        name, dims, n_bytes = tensor.name, tensor.dims, tensor.n_bytes
        match = _BLOCK_TENSOR.match(name)
        if match:
            layer = int(match.group(1))
            if layer >= n_layers:
                raise ValueError(f"tensor {name} is past the model's {n_layers} blocks")
            if not lo <= layer < hi:
                continue
            name = f"blk.{layer - lo}.{match.group(2)}"
        elif name == _TOKEN_EMBD and not (first or last):
            # llama.cpp requires token_embd with one row per vocabulary entry in every stage. The first
            # stage looks tokens up in it and the last uses it as the head when the model ties the two;
            # a middle stage (vocab_size 1) keeps one row: the first slice along the slowest dimension.
            dims, n_bytes = (*dims[:-1], 1), n_bytes // dims[-1]
        elif name == _OUTPUT and not last:
            continue
        # Anything else is output_norm or another small model-wide tensor: llama.cpp requires output_norm
        # even where cb_eval stops the graph before it.
        tensors.append(CopiedTensor(name, dims, tensor.type, header.data_offset + tensor.offset, n_bytes))
    return tensors


def cached_split(model: Path, stages: int, cache_root: Path) -> list[Path]:
    """The model's stage files under cache_root, cut on first use (with a progress bar) and reused after."""
    directory = cache_root / f"{model.name.removesuffix('.gguf')}-{stages}"
    manifest_path = directory / MANIFEST_NAME
    if manifest_path.exists():
        manifest = StageManifest.from_json(manifest_path.read_text())
    else:
        log.info("splitting %s into %d stages (once)", model.name, stages)
        manifest = split_model(model, stages, directory, progress=True)
    return [directory / stage.file for stage in manifest.stages]
