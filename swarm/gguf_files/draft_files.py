"""Early-exit draft files: a model's first N layers with its own embedding, output norm and head, as one GGUF.

Such a draft shares its source's vocabulary by construction, so its proposals can be verified by the
source model itself (speculative decoding). The file is an ordinary whole model to llama.cpp: it has
``{arch}.block_count = N`` and the per-layer metadata of its N layers, and it carries no
``swarm.stage.*`` keys (a worker would serve it as a pipeline stage), only ``swarm.draft.*`` ones
naming its source.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gguf

from swarm.gguf_files.gguf_copy import NewValue, write_gguf_copy
from swarm.gguf_files.gguf_header import read_gguf_header
from swarm.gguf_files.stage_files import _key, model_name, stage_metadata, stage_tensors, supported_architecture
from swarm.shared.hashing import sha256_of

__all__ = ["DraftFile", "write_early_exit_drafts"]

log = logging.getLogger(__name__)

_STAGE_PREFIX = "swarm.stage."


@dataclass(frozen=True)
class DraftFile:
    """What write_early_exit_drafts wrote: the file, its layer count and its source's."""

    path: Path
    layers: int
    source_block_count: int
    bytes: int


def write_early_exit_drafts(
    model: Path, layer_counts: Sequence[int], out_dir: Path, progress: bool = False
) -> list[DraftFile]:
    """Writes, for each N of layer_counts, the model's first N layers, embedding, output norm and head into
    one GGUF in out_dir. N must be 1 to the model's layer count minus one: a draft of every layer is the
    model itself, proposing what it then verifies at full cost.
    """
    return _write_drafts(model, layer_counts, out_dir, progress, every_layer_allowed=False)


def _write_drafts(
    model: Path, layer_counts: Sequence[int], out_dir: Path, progress: bool, *, every_layer_allowed: bool
) -> list[DraftFile]:
    """write_early_exit_drafts; every_layer_allowed also takes N = the model's layer count, a file that
    computes what the model does: how the tests check that the embedding and head are carried right."""
    header = read_gguf_header(model)
    arch = supported_architecture(header)
    if any(key.startswith(_STAGE_PREFIX) for key in header.fields):
        raise ValueError(f"{model.name} is a pipeline stage file: a draft is cut from a whole model")
    n_layers = header.fields[_key(gguf.Keys.LLM.BLOCK_COUNT, arch)].integer()
    most = n_layers if every_layer_allowed else n_layers - 1
    for layers in layer_counts:
        if not 1 <= layers <= most:
            raise ValueError(f"a draft of this {n_layers}-layer model keeps 1 to {n_layers - 1} layers, not {layers}")
    source_sha256 = sha256_of(model)
    name = model_name(header, model)
    string, u32 = gguf.GGUFValueType.STRING, gguf.GGUFValueType.UINT32
    out_dir.mkdir(parents=True, exist_ok=True)
    drafts: list[DraftFile] = []
    for layers in layer_counts:
        # One stage that is both first and last is a whole model of layers [0, layers): the stage code
        # already cuts the per-layer arrays and the sliding-window pattern, and keeps embedding and head.
        draft_meta = stage_metadata(header, arch, n_layers, 0, 1, 0, layers, source_sha256)
        for key in [k for k in draft_meta if k.startswith(_STAGE_PREFIX)]:
            del draft_meta[key]
        label = f"{name} (draft: layers 0-{layers - 1} of {n_layers})"
        draft_meta[gguf.Keys.General.NAME] = NewValue(label.encode(), string)
        draft_meta["swarm.draft.source_block_count"] = NewValue(n_layers, u32)
        draft_meta["swarm.draft.source_sha256"] = NewValue(source_sha256.encode(), string)
        tensors = stage_tensors(header, n_layers, first=True, last=True, lo=0, hi=layers)
        path = out_dir / f"{model.stem}.draft{layers}-of-{n_layers}.gguf"
        write_gguf_copy(path, model, arch, header.alignment, draft_meta, tensors, progress)
        log.info("draft of %s: layers [0, %d) of %d -> %s", model.name, layers, n_layers, path)
        drafts.append(DraftFile(path, layers, n_layers, path.stat().st_size))
    return drafts
