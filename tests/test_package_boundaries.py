"""Imports point down the package layers: contracts import no role, no library package imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "swarm"
ROLES = (
    "swarm.coordinator",
    "swarm.worker",
    "swarm.engine",
    "swarm.cli",
    "swarm.bench",
    "swarm.launch",
    "swarm.deploy",
)

# package -> module prefixes it must never import, and why
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "swarm.shared": ROLES,  # contracts every role uses
    "swarm.wire": ROLES,  # the wire format sits under every role
    "swarm.client": ROLES,  # a client install must not drag in the coordinator or llama.cpp
    "swarm.gguf_files": (*ROLES, "llama_cpp"),  # GGUF files as files: no llama.cpp
    "swarm.coordinator": ("swarm.engine", "swarm.worker", "swarm.cli", "swarm.bench", "llama_cpp"),
    "swarm.worker": ("swarm.coordinator", "swarm.cli", "swarm.bench"),
    "swarm.engine": ("swarm.coordinator", "swarm.worker", "swarm.cli", "swarm.bench", "swarm.launch"),
    "swarm.launch": ("swarm.cli", "swarm.bench"),
    "swarm.bench": ("swarm.cli",),
    "swarm.deploy": ("swarm.cli",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_pb2" not in p.name)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_upward(package: str) -> None:
    offences = []
    for path in sources():
        module = module_name(path)
        if module != package and not module.startswith(package + "."):
            continue
        for imported in imports_of(path):
            for forbidden in FORBIDDEN[package]:
                if imported == forbidden or imported.startswith(forbidden + "."):
                    offences.append(f"{module} imports {imported}")
    assert not offences, "\n".join(sorted(set(offences)))


def test_the_rules_see_every_package() -> None:
    """A new top-level package must be placed in the layers above, or it escapes them."""
    packages = {f"swarm.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages - set(FORBIDDEN) <= {"swarm.cli"}, packages - set(FORBIDDEN)
