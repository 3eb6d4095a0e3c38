"""`swarm split`: cut a GGUF model into layer-range stage files for a pipeline across PCs, or an early-exit draft."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from swarm.gguf_files.default_model import resolve_model
from swarm.gguf_files.draft_files import write_early_exit_drafts
from swarm.gguf_files.stage_files import MANIFEST_NAME, UnsupportedArchitecture, split_model


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "split", help="write one GGUF per pipeline stage with a manifest, or an early-exit draft model"
    )
    p.add_argument("model", help="GGUF path, or 'default' for Gemma 3 270M")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--stages", type=int, help="number of stages (equal layer ranges)")
    what.add_argument(
        "--draft-layers",
        type=int,
        metavar="N",
        help="write one standalone model of the first N layers with the embedding and output head (a draft)",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for the stage files and manifest.json")
    p.set_defaults(run=run_split)


def run_split(args: argparse.Namespace) -> int:
    model = resolve_model(args.model)
    if not model.is_file():
        print(f"swarm split: error: model file not found: {model}", file=sys.stderr)
        return 2
    if args.draft_layers is not None:
        return _write_draft(model, args.draft_layers, args.out)
    if args.stages < 1:
        print("swarm split: error: --stages must be at least 1", file=sys.stderr)
        return 2
    try:
        manifest = split_model(model, args.stages, args.out, progress=True)
    except (UnsupportedArchitecture, ValueError) as exc:
        print(f"swarm split: error: {exc}", file=sys.stderr)
        return 2
    print(f"{manifest.model} ({manifest.architecture}, {manifest.n_layers} layers) -> {args.out / MANIFEST_NAME}")
    for stage in manifest.stages:
        print(
            f"  stage {stage.index}: layers {stage.layer_start}-{stage.layer_end - 1}  {stage.file}  "
            f"{stage.bytes / 1e6:.1f} MB  sha256 {stage.sha256[:12]}"
        )
    return 0


def _write_draft(model: Path, layers: int, out: Path) -> int:
    if layers < 1:  # before the model is read; the top of the range needs its layer count
        print(f"swarm split: error: --draft-layers must be at least 1, not {layers}", file=sys.stderr)
        return 2
    try:
        (draft,) = write_early_exit_drafts(model, [layers], out, progress=True)
    except (UnsupportedArchitecture, ValueError) as exc:
        print(f"swarm split: error: --draft-layers: {exc}", file=sys.stderr)
        return 2
    print(
        f"{draft.path}  draft of {model.name}: layers 0-{draft.layers - 1} of {draft.source_block_count} "
        f"(N = {draft.layers}), {draft.bytes / 1e6:.1f} MB"
    )
    return 0
