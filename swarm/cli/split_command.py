"""`swarm split`: cut a GGUF model into layer-range stage files for a pipeline across PCs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from swarm.gguf_files.default_model import resolve_model
from swarm.gguf_files.stage_files import MANIFEST_NAME, UnsupportedArchitecture, split_model


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("split", help="write one GGUF per pipeline stage, with a manifest")
    p.add_argument("model", help="GGUF path, or 'default' for Gemma 3 270M")
    p.add_argument("--stages", type=int, required=True, help="number of stages (equal layer ranges)")
    p.add_argument("--out", type=Path, required=True, help="directory for the stage files and manifest.json")
    p.set_defaults(run=run_split)


def run_split(args: argparse.Namespace) -> int:
    model = resolve_model(args.model)
    if not model.is_file():
        print(f"swarm split: error: model file not found: {model}", file=sys.stderr)
        return 2
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
