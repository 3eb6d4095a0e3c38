"""How much resident memory loading each pipeline stage costs, against its file size plus its KV cache.

    python -m swarm.bench.stage_memory [--model default|PATH] [--stages 3] [--slots 1] [--context 2048]

Each stage is loaded in a fresh child process (so stages do not share pages), which reports
its resident set before loading, after loading and after one decode step has touched the
weights; the KV cache size is what llama.cpp allocates for the stage's layers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import psutil

from swarm.gguf_files.default_model import resolve_model
from swarm.gguf_files.gguf_header import read_gguf_header
from swarm.gguf_files.stage_files import cached_split


def measure_one(path: Path, slots: int, context: int) -> dict[str, float]:
    """Runs in the child: RSS before, after load and after one step, in MB."""
    from swarm.engine.llama_adapter import LlamaModel
    from swarm.engine.stage_executor import StageExecutor
    from swarm.shared.stage_messages import StageWork

    process = psutil.Process()
    before = process.memory_info().rss
    model = LlamaModel(path)
    stage = model.stage
    if stage is None:
        raise SystemExit(f"{path} is not a stage file")
    executor = StageExecutor(
        model,
        first=stage.index == 0,
        last=stage.index == stage.count - 1,
        slots=slots,
        context_per_slot=context,
        threads=2,
    )
    loaded = process.memory_info().rss
    executor.open(0)
    if stage.index == 0:
        work = StageWork(0, 0, tokens=tuple(model.tokenize("The history of the printing press")))
    else:
        work = StageWork(0, 0, hidden=np.zeros((8, model.n_embd), dtype=np.float32), sample=executor.last)
    executor.step([work])
    stepped = process.memory_info().rss
    executor.close_all()
    mb = 1 / 1e6
    return {"before": before * mb, "loaded": loaded * mb, "stepped": stepped * mb}


def kv_bytes(path: Path, slots: int, context: int) -> int:
    """K and V of every layer of the stage for every cell (f16), from the GGUF's hyper-parameters."""
    header = read_gguf_header(path)

    def value(suffix: str) -> int:
        for field in header.fields.values():
            if field.key.endswith(suffix):
                return field.integer()  # of a per-layer array, the first layer's
        raise KeyError(suffix)

    layers, heads_kv = value(".block_count"), value(".attention.head_count_kv")
    key_len = (
        value(".attention.key_length")
        if any(f.endswith(".attention.key_length") for f in header.fields)
        else value(".embedding_length") // value(".attention.head_count")
    )
    return layers * slots * context * heads_kv * key_len * 2 * 2


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm.bench.stage_memory")
    parser.add_argument("--model", default="default")
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(args.child, args.slots, args.context)))
        return 0
    with tempfile.TemporaryDirectory(prefix="swarm-stage-memory-") as scratch:
        files = cached_split(resolve_model(args.model), args.stages, Path(scratch))
        print("| stage | file MB | KV MB | RSS growth after load MB | after one step MB | step growth / (file + KV) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for index, path in enumerate(files):
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "swarm.bench.stage_memory",
                    "--child",
                    str(path),
                    "--slots",
                    str(args.slots),
                    "--context",
                    str(args.context),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rss = json.loads(child.stdout.strip().splitlines()[-1])
            file_mb, kv_mb = path.stat().st_size / 1e6, kv_bytes(path, args.slots, args.context) / 1e6
            grown = rss["stepped"] - rss["before"]
            print(
                f"| {index + 1}/{len(files)} | {file_mb:.1f} | {kv_mb:.1f} | {rss['loaded'] - rss['before']:.1f} | "
                f"{grown:.1f} | {grown / (file_mb + kv_mb):.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
