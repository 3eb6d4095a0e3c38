#!/usr/bin/env bash
# Installs what swarm needs on a Debian/Ubuntu machine: redis-server and a C++ toolchain from apt
# (only those missing), then swarm and its Python dependencies into ./.venv.
# Compiling llama-cpp-python takes about 7 minutes on 2 cores the first time; pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v c++ >/dev/null || missing+=(build-essential)
command -v cmake >/dev/null || missing+=(cmake)
command -v systemd-analyze >/dev/null || missing+=(systemd)  # the tests verify deploy/systemd's units
command -v chromium >/dev/null || missing+=(chromium)  # the dashboard's browser test drives it headless
command -v haproxy >/dev/null || missing+=(haproxy)  # the tests check deploy/'s load balancer examples
command -v nginx >/dev/null || missing+=(nginx)
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing with apt-get: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"swarm needs Python 3.11 or newer, found {sys.version.split()[0]}; set PYTHON=/path/to/python3.11")
PY

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) .venv/bin/python -m pip install -q -e '.[dev]'
echo "swarm installed in $(pwd)/.venv (activate with: source .venv/bin/activate)"
