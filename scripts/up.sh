#!/usr/bin/env bash
# The quick start: installs what is missing, then runs a local swarm on the default model
# (Redis, a coordinator, two workers) and shows a generation. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/swarm up "$@"
