"""ansible/: ansible-lint passes (production profile), and the playbook runs in check mode on this machine as a worker.

The check runs the worker's half of site.yml against localhost (-c local --check --diff), from the
package check to the unit, its CPU drop-in and the env file. It runs with swarm_manage_services=false:
a container has no systemd as PID 1, so systemctl cannot even answer what it would do; the units
themselves are checked by tests/deploy/test_systemd.py. Check mode changes nothing on the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent


def ansible_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }


def test_ansible_lint_passes(tmp_path: Path) -> None:
    result = subprocess.run(
        [BIN / "ansible-lint", "--offline", "--profile", "production"],
        cwd=ANSIBLE,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def check_run(tmp_path: Path, group: str, *extra_vars: str) -> str:
    """ansible-playbook site.yml --check --diff with localhost as the only host of group; returns its output."""
    inventory = tmp_path / "inventory.ini"
    local = f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}"
    inventory.write_text("\n".join(f"[{g}]\n{local if g == group else ''}" for g in ("workers", "coordinator")))
    argv: list[str | Path] = [BIN / "ansible-playbook", "-i", inventory, "site.yml", "--check", "--diff"]
    for assignment in ("swarm_manage_services=false", f"swarm_common_pip_spec={ROOT}", *extra_vars):
        argv += ["-e", assignment]
    result = subprocess.run(
        argv, cwd=ANSIBLE, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=100, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "failed=0" in output and "unreachable=0" in output
    return output


def test_the_worker_role_runs_in_check_mode_on_localhost(tmp_path: Path) -> None:
    output = check_run(
        tmp_path, "workers", "swarm_token=s3cret", "swarm_worker_threads=3", "swarm_coordinator_address=10.0.0.1:50051"
    )
    assert "Write the worker's settings] ***" in output and "s3cret" not in output  # no token in diffs
    assert "+CPUQuota=300%" in output  # the drop-in follows the threads
    assert "+ExecStart=/opt/swarm/venv/bin/swarm join" in output  # the unit from deploy/systemd


def test_the_coordinator_role_runs_in_check_mode_on_localhost(tmp_path: Path) -> None:
    output = check_run(tmp_path, "coordinator", "swarm_token=s3cret")
    assert "Write the coordinator's settings] ***" in output and "s3cret" not in output
    assert "+ExecStart=/opt/swarm/venv/bin/swarm coordinator" in output


def test_a_coordinator_sharing_another_host_s_redis_installs_none_and_points_at_it(tmp_path: Path) -> None:
    output = check_run(
        tmp_path,
        "coordinator",
        "swarm_token=s3cret",
        "swarm_coordinator_runs_redis=false",
        "swarm_coordinator_redis_url=redis://10.0.0.1:6379/0",
    )
    install = output.split("Install Redis] ***", 1)[1].split("TASK [", 1)[0]
    assert "skipping: [localhost]" in install
    assert "+ExecStart=/opt/swarm/venv/bin/swarm coordinator" in output
