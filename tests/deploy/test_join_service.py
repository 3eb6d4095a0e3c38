"""`swarm join ... --install` and `swarm leave --uninstall`, run as real commands: the unit they write passes
`systemd-analyze verify`, keeps the token off its command line, and is removed again.

$SWARM_UNIT_DIR points them at a temp directory and keeps them from calling systemctl, so the tests
never touch the machine's own services; where systemd is not running (a container), the default
paths are tried too, under a temp $XDG_CONFIG_HOME.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.cli.service_flags import service_argv
from swarm.deploy.join_service import ENV_NAME, UNIT_NAME
from swarm.launch.local_swarm import swarm_argv

pytestmark = pytest.mark.timeout(60)

JOIN = ["join", "10.0.0.5:50051", "--model", "my 100% $model.gguf", "--when", "mon-fri 19:00-07:00, sat-sun"]


def swarm(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        swarm_argv(*args), capture_output=True, text=True, timeout=30, env={**os.environ, **env}, check=False
    )


def settings(unit: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in unit.read_text().splitlines() if "=" in line and line[0] != "#")


def test_install_writes_a_unit_systemd_accepts_with_the_same_flags_and_uninstall_removes_it(tmp_path: Path) -> None:
    installed = swarm(*JOIN, "--token", "s3cret", "--threads", "3", "--install", SWARM_UNIT_DIR=str(tmp_path))
    assert installed.returncode == 0, installed.stderr
    assert "Traceback" not in installed.stderr
    unit, env = tmp_path / UNIT_NAME, tmp_path / ENV_NAME
    assert f"wrote {unit}" in installed.stdout and "undo: swarm leave --uninstall" in installed.stdout
    assert "to enable it: systemctl --user daemon-reload && systemctl --user enable --now swarm-join.service" in (
        installed.stdout
    )
    exec_start = settings(unit)["ExecStart"]
    assert exec_start == (
        f"{sys.executable} -m swarm join 10.0.0.5:50051 --model "
        '"my 100%% $$model.gguf" --when "mon-fri 19:00-07:00, sat-sun" --threads 3'
    )
    assert "s3cret" not in unit.read_text()
    assert env.read_text() == "SWARM_TOKEN=s3cret\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert settings(unit)["WantedBy"] == "default.target"

    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/install.sh installs the systemd package"
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=30, check=False)
    assert verified.returncode == 0, verified.stderr
    assert UNIT_NAME not in verified.stderr, f"warnings about the unit:\n{verified.stderr}"

    removed = swarm("leave", "--uninstall", SWARM_UNIT_DIR=str(tmp_path))
    assert removed.returncode == 0, removed.stderr
    assert not unit.exists() and not env.exists()
    assert f"removed {unit}" in removed.stdout
    again = swarm("leave", "--uninstall", SWARM_UNIT_DIR=str(tmp_path))
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_a_system_unit_runs_as_its_owner_and_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    shown = swarm(*JOIN, "--install", "--system", "--dry-run", SWARM_UNIT_DIR=str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert list(tmp_path.iterdir()) == []
    assert "User=" in shown.stdout and "WantedBy=multi-user.target" in shown.stdout
    bad = swarm(*JOIN[:-1], "mon-fri 25:00-07:00", "--install", SWARM_UNIT_DIR=str(tmp_path))
    assert bad.returncode == 2 and '--when: "mon-fri 25:00-07:00": hour 25' in bad.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_owners_limits_and_idle_weight_go_in_the_units_cgroup_and_systemd_accepts_them(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    limited = [*JOIN[:-2], "--when", "idle", "--max-cpu", "50%", "--max-memory", "2G"]
    installed = swarm(*limited, "--install", SWARM_UNIT_DIR=str(tmp_path))
    assert installed.returncode == 0, installed.stderr
    unit = tmp_path / UNIT_NAME
    written = settings(unit)
    assert written["CPUQuota"] == f"{cores * 50}%"
    assert written["MemoryMax"] == str(2 * 1024**3) and int(written["MemoryHigh"]) < 2 * 1024**3
    assert written["CPUWeight"] == "idle"  # a service has no autogroup of its own to lower
    assert written["Environment"] == "SWARM_LIMITS_KEPT_BY=unit"  # the worker in it must not run itself again
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30)
    assert verified.returncode == 0 and UNIT_NAME not in verified.stderr, verified.stderr
    plain = swarm(*JOIN, "--install", "--dry-run", SWARM_UNIT_DIR=str(tmp_path))
    shown = {line.split("=", 1)[0] for line in plain.stdout.splitlines() if "=" in line and line[0] != "#"}
    assert not {"CPUQuota", "MemoryMax", "CPUWeight", "Environment"} & shown, plain.stdout
    bad = swarm(*JOIN, "--max-memory", "lots", "--install", SWARM_UNIT_DIR=str(tmp_path))
    assert bad.returncode == 2 and "--max-memory 'lots'" in bad.stderr, bad.stderr


@pytest.mark.skipif(Path("/run/systemd/system").is_dir(), reason="systemd runs here: this would enable a real unit")
def test_without_a_running_systemd_the_user_unit_is_written_and_the_owner_told_how_to_enable_it(
    tmp_path: Path,
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path), "SWARM_UNIT_DIR": ""}
    installed = swarm(*JOIN, "--install", **env)
    assert installed.returncode == 0, installed.stderr
    unit = tmp_path / "systemd" / "user" / UNIT_NAME
    assert unit.exists()
    assert "not enabled (" in installed.stdout and "systemctl --user enable --now" in installed.stdout
    assert swarm("leave", "--uninstall", **env).returncode == 0
    assert not unit.exists()


def test_the_service_command_line_drops_the_install_flags_and_the_token() -> None:
    argv = ["--log-level", "debug", "join", "a:1", "--token", "t", "--install", "--system", "--token=u", "--dry-run"]
    assert service_argv(argv) == ["--log-level", "debug", "join", "a:1"]
