"""`--max-cpu`/`--max-memory` on real worker processes where no systemd keeps them: fewer threads, nice 10 and idle
I/O, shown to the owner; a model larger than the memory cap is refused at start with a message, not a crash."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from swarm.launch.local_swarm import swarm_argv
from swarm.worker.owner_limits import KEPT_BY_ENV
from tests.conftest import RunningSwarm
from tests.e2e.test_owner_rules import owner

MakeSwarm = Callable[..., RunningSwarm]


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[16])  # field 19 of the whole line


def test_a_worker_without_systemd_keeps_its_cpu_cap_with_fewer_threads_at_nice_10_and_says_so(
    make_swarm: MakeSwarm,
    control_dir: Path,
) -> None:
    cores = os.cpu_count() or 1
    expected_threads = max(1, min(4, cores // 2))
    swarm = make_swarm(workers=0)
    worker = swarm.processes.start_worker(
        swarm.address,
        swarm.model,
        *["--threads", "4", "--max-cpu", "50%", "--max-memory", "1G", "--worker-id", "capped", *swarm.worker_args],
        name="capped",
        env={"SWARM_CONTROL_DIR": str(control_dir), KEPT_BY_ENV: "itself"},  # a CI host's desktop systemd aside
    )
    swarm.wait_for_workers(1)
    with swarm.client() as client:
        assert client.generate("Hello", max_tokens=4, temperature=0.0).finished.completion_tokens == 4
        shown = next(w.info for w in client.status().workers if w.info.worker_id == "capped")
    assert shown.threads == expected_threads
    local = owner("local", control_dir, "--worker-id", "capped")
    assert local.returncode == 0, local.stderr
    assert f"on {expected_threads} of {expected_threads} threads" in local.stdout, local.stdout
    assert f"limits: 50% of {cores} cores and 1.0 GiB of memory, kept by itself (no systemd here)" in local.stdout
    assert nice_of(worker.pid) == 10
    if ionice := shutil.which("ionice"):  # util-linux
        io_class = subprocess.run([ionice, "-p", str(worker.pid)], capture_output=True, text=True, check=False)
        assert io_class.stdout.strip() == "idle", io_class


def test_a_model_larger_than_the_memory_cap_is_refused_at_start_naming_the_flag(tiny_model: Path) -> None:
    refused = subprocess.run(
        swarm_argv("join", "127.0.0.1:9", "--model", str(tiny_model), "--max-memory", "1K"),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, KEPT_BY_ENV: "itself"},
        check=False,
    )
    assert refused.returncode != 0
    assert "larger than --max-memory (0.00 GiB)" in refused.stderr and "Traceback" not in refused.stderr
