"""The systemd units in deploy/systemd: `systemd-analyze verify` accepts them; a worker runs under their hardening.

verify needs ExecStart= to name an executable that exists, so the test checks copies whose
/opt/swarm/venv/bin/swarm is this checkout's own `swarm` script and whose EnvironmentFile= is the
example env file; nothing else is changed. Starting the units needs systemd as PID 1, which a
container does not have, so their one risky setting for llama.cpp, MemoryDenyWriteExecute=, is
checked with the kernel's own equivalent (prctl PR_SET_MDWE, Linux 6.3+) on a real worker.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.cli.main import build_parser
from swarm.launch.local_swarm import ManagedProcess, swarm_argv
from tests.conftest import RunningSwarm

pytestmark = pytest.mark.timeout(60)

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALLED_SWARM = "/opt/swarm/venv/bin/swarm"
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def env_keys(name: str) -> set[str]:
    return {line.partition("=")[0] for line in (UNITS / name).read_text().splitlines() if re.match(r"^[A-Z_]+=", line)}


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/install.sh installs the systemd package"
    swarm_script = Path(sys.executable).parent / "swarm"
    assert swarm_script.exists()
    for name in ("coordinator.env", "worker.env"):
        shutil.copy(UNITS / name, tmp_path / name)
    units = []
    for name in ("swarm-coordinator.service", "swarm-worker.service"):
        text = (UNITS / name).read_text().replace(INSTALLED_SWARM, str(swarm_script))
        (tmp_path / name).write_text(text.replace("/etc/swarm/", f"{tmp_path}/"))
        units.append(str(tmp_path / name))
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "swarm-" not in result.stderr, f"warnings about the units:\n{result.stderr}"


@pytest.mark.parametrize(
    ("unit", "env"), [("swarm-coordinator.service", "coordinator.env"), ("swarm-worker.service", "worker.env")]
)
def test_every_variable_a_unit_uses_is_in_its_example_env_file(unit: str, env: str) -> None:
    (exec_start,) = unit_settings(unit)["ExecStart"]
    used = set(re.findall(r"\$\{?([A-Z_]+)\}?", exec_start))
    assert used <= env_keys(env), f"{unit} uses {sorted(used - env_keys(env))}, which {env} does not set"


def test_the_units_are_hardened_and_the_worker_yields_to_the_desktop() -> None:
    for unit in ("swarm-coordinator.service", "swarm-worker.service"):
        settings = unit_settings(unit)
        for key, value in [
            ("DynamicUser", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("NoNewPrivileges", "yes"),
            ("PrivateTmp", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("Restart", "on-failure"),
            ("KillSignal", "SIGTERM"),
        ]:
            assert settings.get(key) == [value], f"{unit}: {key}"
        assert "@system-service" in settings["SystemCallFilter"]
    coordinator, worker = unit_settings("swarm-coordinator.service"), unit_settings("swarm-worker.service")
    assert coordinator["Requires"] == ["redis-server.service"]
    assert "redis-server.service" in coordinator["After"][0]
    assert worker["Nice"] == ["10"] and worker["IOSchedulingClass"] == ["idle"] and worker["CPUQuota"]
    # The worker drains for 30 s after SIGTERM before it leaves; systemd must wait longer than that.
    assert int(worker["TimeoutStopSec"][0].removesuffix("s")) > 30


def mdwe_supported() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", f"import ctypes,sys; sys.exit(ctypes.CDLL(None).prctl({PR_SET_MDWE}, 1, 0, 0, 0))"],
        check=False,
    )
    return probe.returncode == 0


MDWE_EXEC = (
    "import ctypes, os, sys\n"
    f"if ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0: sys.exit('no MDWE')\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
)


def test_a_worker_serves_with_write_execute_memory_denied(make_swarm: object, tmp_path: Path) -> None:
    if not mdwe_supported():
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+), the in-kernel MemoryDenyWriteExecute=")
    # The guard holds: a process under it cannot map memory writable and executable.
    denied = subprocess.run(
        [
            sys.executable,
            "-c",
            MDWE_EXEC,
            "-c",
            "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert denied.returncode != 0 and "PermissionError" in denied.stderr
    swarm: RunningSwarm = make_swarm(workers=0)  # type: ignore[operator]
    argv = swarm_argv("join", swarm.address, "--model", str(swarm.model), "--listen", "127.0.0.1:0", "--threads", "1")
    worker = ManagedProcess("worker-mdwe", [sys.executable, "-c", MDWE_EXEC, *argv[1:]], tmp_path / "mdwe.log").start()
    swarm.processes.processes.append(worker)
    swarm.wait_for_workers(1, timeout_s=40)
    with swarm.client() as client:
        assert client.generate("Hello", max_tokens=4, temperature=0).token_ids


def expand_exec_start(exec_start: str, env: dict[str, str]) -> list[str]:
    """systemd's rules: ${VAR} becomes exactly one argument, $VAR splits at whitespace."""
    argv: list[str] = []
    for word in exec_start.split():
        if braced := re.fullmatch(r"\$\{([A-Z_]+)\}", word):
            argv.append(env[braced.group(1)])
        elif bare := re.fullmatch(r"\$([A-Z_]+)", word):
            argv.extend(env[bare.group(1)].split())
        else:
            argv.append(word)
    return argv


@pytest.mark.parametrize(
    ("unit", "env"), [("swarm-coordinator.service", "coordinator.env"), ("swarm-worker.service", "worker.env")]
)
def test_each_unit_runs_a_command_swarm_accepts(unit: str, env: str) -> None:
    values = dict(line.split("=", 1) for line in (UNITS / env).read_text().splitlines() if re.match(r"^[A-Z_]+=", line))
    (exec_start,) = unit_settings(unit)["ExecStart"]
    argv = expand_exec_start(exec_start, values)
    assert argv[0] == INSTALLED_SWARM
    args = build_parser().parse_args(argv[1:])  # argparse exits on a flag swarm does not have
    assert args.token == values["SWARM_TOKEN"]
    # An empty SWARM_COORDINATOR reaches `swarm join` as "", which means: find the coordinator on the LAN.
    assert build_parser().parse_args(expand_exec_start(exec_start, {**values, "SWARM_COORDINATOR": ""})[1:])
    # The commented TLS placeholders are flags swarm has, too.
    for placeholder in re.findall(r"^# (SWARM_[A-Z]+_ARGS)=(.+)$", (UNITS / env).read_text(), re.MULTILINE):
        assert build_parser().parse_args(expand_exec_start(exec_start, {**values, placeholder[0]: placeholder[1]})[1:])
