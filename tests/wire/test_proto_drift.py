"""The committed stubs are exactly what protoc generates from proto/swarm.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ["swarm_pb2.py", "swarm_pb2.pyi", "swarm_pb2_grpc.py"]


def test_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-Iswarm/wire={ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            "swarm/wire/swarm.proto",
        ],
        check=True,
        cwd=ROOT,
    )
    for name in GENERATED:
        fresh = (tmp_path / "swarm" / "wire" / name).read_text()
        committed = (ROOT / "swarm" / "wire" / name).read_text()
        assert fresh == committed, f"swarm/wire/{name} is stale: run scripts/generate_stubs.sh"


def test_stubs_import_and_describe_the_services() -> None:
    from swarm.wire import swarm_pb2

    services = set(swarm_pb2.DESCRIPTOR.services_by_name)
    assert services == {"Inference", "Registry", "Worker", "ModelFiles", "Stage", "Batch", "Admin", "Usage", "Draft"}
    fields = set(swarm_pb2.GenerateRequest.DESCRIPTOR.fields_by_name)
    assert {"model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop"} <= fields
