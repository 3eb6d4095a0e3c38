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


def test_the_worker_role_runs_in_check_mode_on_localhost(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        f"[workers]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n\n[coordinator]\n"
    )
    result = subprocess.run(
        [
            BIN / "ansible-playbook",
            "-i",
            inventory,
            "site.yml",
            "--check",
            "--diff",
            "--limit",
            "workers",
            "-e",
            "swarm_manage_services=false",
            "-e",
            "swarm_coordinator_address=127.0.0.1:50051",
            "-e",
            f"swarm_common_pip_spec={ROOT}",
            "-e",
            "swarm_worker_threads=3",
        ],
        cwd=ANSIBLE,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "failed=0" in output and "unreachable=0" in output
    assert "+SWARM_COORDINATOR=127.0.0.1:50051" in output  # the env file it would write
    assert "+CPUQuota=300%" in output  # the drop-in follows the threads
    assert "+ExecStart=/opt/swarm/venv/bin/swarm join" in output  # the unit from deploy/systemd
