"""The pure parts of `swarm ray`: flags checked before Ray is touched, a clear error without Ray, children that die
with their actor."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import psutil
import pytest

from swarm.cli.main import main
from swarm.deploy.ray_fleet import RAY_MISSING, RayFleetConfig, RayFleetError, import_ray
from swarm.launch.local_swarm import wait_until

pytestmark = pytest.mark.timeout(30)


def test_without_ray_swarm_ray_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(RayFleetError, match=r"pip install 'swarm\[ray\]'"):
        import_ray()
    assert main(["ray", "status", "--address", "127.0.0.1:1"]) == 2
    assert RAY_MISSING in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "2", "--threads", "0"], "--threads must be at least 1"),
        (["--workers", "2", "--coordinator", "nohost"], "expected HOST:PORT"),
        (["--workers", "2", "--context", "4"], "--context must be at least 16"),
    ],
)
def test_bad_flags_are_refused_before_ray_is_reached(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ray", "up", "--address", "127.0.0.1:1", *flags]) == 2
    assert message in capsys.readouterr().err


def test_join_arguments_name_the_coordinator_only_when_given() -> None:
    found_on_lan = RayFleetConfig(workers=1, threads=3, model="m.gguf")
    assert found_on_lan.join_args()[:2] == ["--model", "m.gguf"] and "--token" not in found_on_lan.join_args()
    given = RayFleetConfig(workers=1, coordinator="10.0.0.1:50051", token="s")
    assert given.join_args()[0] == "10.0.0.1:50051" and given.join_args()[-2:] == ["--token", "s"]
    assert RayFleetConfig(pack=True).strategy == "PACK" and RayFleetConfig().strategy == "SPREAD"


def test_a_worker_child_dies_with_its_actor_process() -> None:
    # The actor process starts the child from a thread, as WorkerActor does, then is SIGKILLed (ray.kill).
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import subprocess, sys, threading, time
                from swarm.deploy.ray_actor import die_with_parent
                def start():
                    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                             preexec_fn=die_with_parent)
                    print(child.pid, flush=True)
                    child.wait()
                threading.Thread(target=start, daemon=True).start()
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert psutil.pid_exists(child_pid)
    parent.kill()
    parent.wait(10)

    def child_gone() -> bool:
        try:
            return psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(child_gone, 10, "the child to die with its parent")
