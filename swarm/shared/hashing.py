"""sha256 of a file, read in blocks so a model never sits whole in memory; with a progress bar if asked."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tqdm import tqdm


def sha256_of(path: Path, progress: bool = False) -> str:
    digest = hashlib.sha256()
    with (
        path.open("rb") as f,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc="checking sha256",
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while block := f.read(1 << 20):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()
