"""A systemd service that keeps this PC joined: `swarm join ... --install` writes and enables it, `swarm leave
--uninstall` stops and removes it. Each returns what it did and how to undo it, in sentences for the owner.

A per-user unit (~/.config/systemd/user) by default, or a system unit (/etc/systemd/system) run as the
owner. The join token goes in an env file only its owner can read, not on the unit's command line.
Where systemd is not running (a container) the files are written and the owner is told how to enable
them; $SWARM_UNIT_DIR puts the files in another directory and leaves systemctl alone (for tests).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

UNIT_NAME = "swarm-join.service"
ENV_NAME = "swarm-join.env"
SYSTEMCTL_TIMEOUT_S = 60.0  # `disable --now` waits for the worker to drain (its --drain-timeout)


class Scope(StrEnum):
    USER = "user"
    SYSTEM = "system"


@dataclass(frozen=True)
class JoinService:
    """Where the unit and its env file go, and whether systemctl may be run on them."""

    scope: Scope
    unit_path: Path
    env_path: Path
    use_systemctl: bool

    @property
    def systemctl(self) -> list[str]:
        return ["systemctl", "--user"] if self.scope is Scope.USER else ["systemctl"]


def join_service(scope: Scope) -> JoinService:
    if chosen := os.environ.get("SWARM_UNIT_DIR"):
        directory = Path(chosen)
        return JoinService(scope, directory / UNIT_NAME, directory / ENV_NAME, use_systemctl=False)
    if scope is Scope.USER:
        config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        return JoinService(scope, config / "systemd" / "user" / UNIT_NAME, config / "swarm" / ENV_NAME, True)
    return JoinService(scope, Path("/etc/systemd/system") / UNIT_NAME, Path("/etc/swarm") / ENV_NAME, True)


def unit_text(
    service: JoinService, command: list[str], working_dir: Path, drain_timeout_s: float, cgroup: Sequence[str] = ()
) -> str:
    """The unit that runs command at boot (system) or with the owner's session (user; with lingering, at boot);
    cgroup: settings such as CPUQuota= that keep the owner's limits."""
    lines = [
        "# Written by `swarm join --install`; `swarm leave --uninstall` removes it.",
        "[Unit]",
        "Description=swarm worker of this PC (swarm join --install)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=exec",
        f"EnvironmentFile=-{service.env_path}",
        f"WorkingDirectory={working_dir}",  # relative paths in the flags (a model, TLS files) resolve as typed
        f"ExecStart={' '.join(_quoted(word) for word in command)}",
        *([f"User={_me()}"] if service.scope is Scope.SYSTEM else []),
        "Restart=on-failure",
        "RestartSec=5s",
        # SIGTERM: it takes nothing new, finishes or hands back what it runs, and leaves.
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={int(drain_timeout_s) + 15}s",
        "Nice=10",
        "IOSchedulingClass=idle",
        *cgroup,
        "",
        "[Install]",
        f"WantedBy={'default.target' if service.scope is Scope.USER else 'multi-user.target'}",
    ]
    return "\n".join(lines) + "\n"


def _quoted(word: str) -> str:
    """One ExecStart word: systemd expands % specifiers and $ variables, so both are escaped."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c in escaped for c in " \t\"'\\;"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def install(service: JoinService, unit: str, env: dict[str, str]) -> list[str]:
    """Writes the unit (and the env file when env is given), then enables and starts it where systemd runs."""
    service.unit_path.parent.mkdir(parents=True, exist_ok=True)
    service.unit_path.write_text(unit)
    said = [f"wrote {service.unit_path}"]
    if env:
        service.env_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        service.env_path.touch(mode=0o600)
        service.env_path.chmod(0o600)
        service.env_path.write_text("".join(f"{name}={value}\n" for name, value in sorted(env.items())))
        said.append(f"wrote {', '.join(sorted(env))} to {service.env_path} (readable by its owner only)")
    enable = [*service.systemctl, "enable", "--now", UNIT_NAME]
    done, why = _run_systemctl(service, [*service.systemctl, "daemon-reload"], enable)
    if done:
        said.append(f"enabled and started {UNIT_NAME}: it starts again at every boot")
        if service.scope is Scope.USER:
            said.append(
                f"a user unit runs while you are logged in; to run it from boot: loginctl enable-linger {_me()}"
            )
        said.append(f"follow it: journalctl {'--user ' if service.scope is Scope.USER else ''}-u {UNIT_NAME} -f")
    else:
        said.append(
            f"not enabled ({why}); to enable it: {' '.join(service.systemctl)} daemon-reload && {' '.join(enable)}"
        )
    said.append(f"undo: swarm leave --uninstall{' --system' if service.scope is Scope.SYSTEM else ''}")
    return said


def uninstall(service: JoinService) -> list[str]:
    """Stops (the worker drains and leaves), disables and removes the unit and its env file."""
    if not service.unit_path.exists():
        return [f"no {service.unit_path}: nothing to remove"]
    said = []
    done, why = _run_systemctl(service, [*service.systemctl, "disable", "--now", UNIT_NAME])
    if done:
        said.append(f"stopped and disabled {UNIT_NAME} (its worker finished or handed back its work and left)")
    else:
        said.append(f"could not disable {UNIT_NAME} ({why}); stop a worker it started with: swarm leave")
    for path in (service.unit_path, service.env_path):
        if path.exists():
            path.unlink()
            said.append(f"removed {path}")
    if done:
        _run_systemctl(service, [*service.systemctl, "daemon-reload"])
    said.append("to join again: swarm join ... --install")
    return said


def _run_systemctl(service: JoinService, *commands: list[str]) -> tuple[bool, str]:
    """Runs each command until one fails: (all ran, why not)."""
    if not service.use_systemctl:
        return False, "$SWARM_UNIT_DIR is set: systemctl left alone"
    if shutil.which("systemctl") is None:
        return False, "systemctl is not installed"
    if not Path("/run/systemd/system").is_dir():
        return False, "systemd is not running on this machine"
    for command in commands:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{' '.join(command)}: {exc}"
        if result.returncode != 0:
            return False, f"{' '.join(command)}: {result.stderr.strip() or f'exit code {result.returncode}'}"
    return True, ""


def _me() -> str:
    """The owner: who ran the command, also under sudo."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def python_command() -> list[str]:
    """How the unit runs swarm: this Python, so the same virtualenv and install."""
    return [sys.executable, "-m", "swarm"]
