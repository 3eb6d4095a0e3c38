"""deploy/docker: the Dockerfile passes hadolint, compose.yaml is a valid Compose file whose commands `swarm` accepts.

No Docker daemon runs here, and Debian ships neither the Compose v2 plugin (it lives in Docker's own
apt repository) nor a Compose v1 that knows the Compose Specification's top-level `name:`, so the
compose file is validated against the Compose Specification's JSON schema (vendored by the
check-jsonschema package, no network needed); `docker compose config` runs too where it exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from swarm.cli.main import build_parser
from tests.conftest import RunningSwarm

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
BIN = Path(sys.executable).parent


def run(*argv: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=45, check=False, **kwargs)


def validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", path)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return loaded


def test_hadolint_passes_the_dockerfile() -> None:
    result = run(BIN / "hadolint", DOCKER / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_swarm_as_a_non_root_user_with_a_health_check() -> None:
    lines = [line.strip() for line in (DOCKER / "Dockerfile").read_text().splitlines()]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) == 2 and stages[-1].endswith("AS runtime")
    runtime = lines[lines.index(stages[-1]) :]
    assert any(re.fullmatch(r"USER [1-9]\d*:[1-9]\d*", line) for line in runtime)
    assert 'ENTRYPOINT ["swarm"]' in runtime
    assert any(line.startswith("HEALTHCHECK ") for line in runtime)
    assert "build-essential" not in "\n".join(runtime)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".git" in ignored and ".venv" in ignored


def test_compose_file_is_valid_against_the_compose_specification(tmp_path: Path) -> None:
    result = validate_compose(DOCKER / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    broken = compose()
    broken["services"]["redis"]["healthcheck"]["retires"] = 3  # a misspelt key: the validation can fail
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    assert validate_compose(tmp_path / "compose.yaml").returncode != 0


def test_docker_compose_config_accepts_the_file_where_compose_is_installed() -> None:
    docker = shutil.which("docker")
    if docker is None or run(docker, "compose", "version").returncode != 0:
        pytest.skip("no Docker Compose v2 here (not packaged by Debian); the schema test above validates the file")
    result = run(docker, "compose", "-f", DOCKER / "compose.yaml", "config", "-q", env={"SWARM_TOKEN": "t"})
    assert result.returncode == 0, result.stderr


def test_every_service_has_a_health_check_and_state_lives_on_volumes() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"redis", "coordinator", "worker-1", "worker-2"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "--appendonly" in services["redis"]["command"]
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert set(spec["volumes"]) == {"redis-data", "models"}
    assert services["coordinator"]["depends_on"]["redis"]["condition"] == "service_healthy"
    for worker in ("worker-1", "worker-2"):
        assert any(v.startswith("models:") for v in services[worker]["volumes"])
        assert services[worker]["depends_on"]["coordinator"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["coordinator", "worker-1", "worker-2"])
def test_each_service_command_is_one_swarm_accepts(service: str) -> None:
    command = [
        re.sub(r"\$\{SWARM_TOKEN:\?[^}]*\}", "secret", part) for part in compose()["services"][service]["command"]
    ]
    args = build_parser().parse_args(command)  # argparse exits on a flag swarm does not have
    assert args.token == "secret"
    if service.startswith("worker"):
        assert args.worker_id == service and args.advertise == f"{service}:50052"


def test_the_health_checks_pass_on_a_real_swarm_and_fail_without_it(make_swarm: object) -> None:
    swarm: RunningSwarm = make_swarm(workers=0)  # type: ignore[operator]
    swarm.add_worker("--worker-id", "worker-1")
    swarm.wait_for_workers(1)
    services = compose()["services"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "SWARM_COORDINATOR": swarm.address}

    def healthy(service: str, **extra_env: str) -> bool:
        kind, *command = services[service]["healthcheck"]["test"]
        argv = ["sh", "-c", command[0]] if kind == "CMD-SHELL" else command
        argv = [part.replace("127.0.0.1:8080", swarm.http) for part in argv]
        return run(*argv, env={**env, **extra_env}).returncode == 0

    assert healthy("coordinator")
    assert healthy("worker-1", SWARM_WORKER_ID="worker-1")
    assert not healthy("worker-2", SWARM_WORKER_ID="worker-2")  # not joined
    swarm.processes.stop()
    assert not healthy("coordinator")
