#!/usr/bin/env bash
# The test command: installs what is missing, then lint, type-check and the whole test suite
# (real redis-server, real gRPC on loopback, real llama.cpp; the Gemma test is marked slow and runs too).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check swarm tests
.venv/bin/ruff format --check swarm tests
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
