#!/usr/bin/env bash
# Regenerates swarm/wire/swarm_pb2*.py from proto/swarm.proto (needs the dev extra: grpcio-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Iswarm/wire=proto --python_out=. --grpc_python_out=. --pyi_out=. swarm/wire/swarm.proto
