#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama.cpp vendored in the pinned llama-cpp-python sdist,
# for `swarm bench --against llama-server`. Optional: CI and the swarm itself never need it.
# Idempotent: exits at once when the binary is already there. Prints the binary's path last.
#
#   PYTHON=.venv/bin/python scripts/build_llama_server.sh   # into ~/.cache/swarm/llama-server/VERSION/
#   LLAMA_SERVER_JOBS=4 scripts/build_llama_server.sh       # more parallel compile jobs
set -euo pipefail

PYTHON="${PYTHON:-python3}"
# The installed llama-cpp-python's version (pyproject.toml pins it), so both arms run the same llama.cpp.
INSTALLED="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || true)"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-${INSTALLED:-0.3.36}}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/swarm/llama-server/$VERSION"
BIN="$CACHE/bin/llama-server"
JOBS="${LLAMA_SERVER_JOBS:-2}"

if [[ -x "$BIN" ]]; then
    echo "llama-server already built: $BIN"
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE/src"
SDIST_DIR="$CACHE/sdist"
if ! ls "$SDIST_DIR"/llama_cpp_python-"$VERSION".tar.gz >/dev/null 2>&1; then
    echo "[1/3] downloading llama-cpp-python==$VERSION sdist"
    "$PYTHON" -m pip download "llama-cpp-python==$VERSION" --no-binary :all: --no-deps -d "$SDIST_DIR"
fi
SRC="$CACHE/src/llama_cpp_python-$VERSION"
if [[ ! -d "$SRC/vendor/llama.cpp" ]]; then
    echo "[2/3] unpacking"
    tar -xzf "$SDIST_DIR"/llama_cpp_python-"$VERSION".tar.gz -C "$CACHE/src"
fi

echo "[3/3] building llama-server (nice 15, -j$JOBS; 10 to 40 minutes on 2 busy cores)"
BUILD="$CACHE/build"
nice -n 15 cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON \
    -DBUILD_SHARED_LIBS=OFF
nice -n 15 cmake --build "$BUILD" --target llama-server -j "$JOBS"

mkdir -p "$CACHE/bin"
cp "$BUILD/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "built: $BIN"
echo "$BIN"
