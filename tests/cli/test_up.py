"""`swarm up`, `swarm status` and `swarm generate` as a user runs them, in real subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import llama_cpp
import psutil
import pytest

from swarm.cli.up_command import DEMO_PROMPT
from swarm.client import SwarmClient
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import free_port


def free_port_runs(length: int, runs: int) -> list[int]:
    """The first ports of `runs` disjoint runs of `length` consecutive free ports (a coordinator per port of a run)."""
    taken: set[int] = set()
    firsts: list[int] = []
    while len(firsts) < runs:
        run = range(first := free_port(), first + length)
        if run[-1] < 65536 and taken.isdisjoint(run) and all(port_is_free(port) for port in run[1:]):
            taken.update(run)
            firsts.append(first)
    return firsts


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def swarm_command(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swarm", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


class SwarmUp:
    """`swarm up` running in the background in a process group of its own, as a terminal runs it, read line by line.

    ignore_sigint: start it with SIGINT ignored, as bash starts a script's background jobs.
    """

    def __init__(
        self, tmp_path: Path, *args: str, log_level: str = "warning", ignore_sigint: bool = False, coordinators: int = 1
    ) -> None:
        # N coordinators listen on port..port+N-1 and http_port..http_port+N-1: every one of those must be free.
        self.port, self.http_port = free_port_runs(coordinators, 2)
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "swarm",
                "--log-level",
                log_level,
                "up",
                "--port",
                str(self.port),
                "--http-port",
                str(self.http_port),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
            preexec_fn=ignore_sigint_in_child if ignore_sigint else None,
        )
        self.output: list[str] = []
        self._children: list[psutil.Process] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def read_until(self, marker: str, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.output.append(line)
            if marker in line:
                return "".join(self.output)
        raise AssertionError(f"{marker!r} never printed; output so far:\n{''.join(self.output)}")

    def children(self) -> list[psutil.Process]:
        """Its child processes now; remembered, so that a failed test can kill whatever is left."""
        try:
            found = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self._children += found
        return found

    def interrupt(self, whole_group: bool = False, timeout_s: float = 60) -> int:
        """SIGINT to `swarm up` (kill -INT), or to its process group (Ctrl-C in its terminal); its exit code.

        When it does not exit in time, it and every child it had are killed, and TimeoutExpired is raised; when it
        had already exited, AssertionError says so with its output.
        """
        if self.process.poll() is not None:
            rest, _ = self.process.communicate()
            self.kill_everything()
            output = "".join(self.output) + rest
            raise AssertionError(f"swarm up exited by itself (code {self.process.returncode}):\n{output}")
        self.children()
        if whole_group:
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGINT)
        try:
            rest, _ = self.process.communicate(timeout=timeout_s)  # reading on: a full pipe would block its children
        except subprocess.TimeoutExpired:
            self.kill_everything()
            raise
        self.output.append(rest)
        return self.process.returncode

    def kill_everything(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for child in self._children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self.process.wait(10)


def ignore_sigint_in_child() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_swarm_up_serves_status_and_generate_then_ctrl_c_stops_everything(tmp_path: Path, tiny_model: Path) -> None:
    up = SwarmUp(tmp_path, "--model", str(tiny_model), "--workers", "2", "--threads", "1")
    try:
        output = up.read_until("swarm is up")
        assert f"gRPC   {up.address}" in output
        assert f"> {DEMO_PROMPT}" in output
        children = psutil.Process(up.process.pid).children(recursive=True)
        assert len(children) == 4  # redis-server, coordinator, two workers

        status = swarm_command("status", "--json", "--coordinator", up.address)
        assert status.returncode == 0, status.stderr
        workers = json.loads(status.stdout)["workers"]
        assert [w["state"] for w in workers] == ["up", "up"]
        assert {w["model"] for w in workers} == {"tiny"}

        env = {**os.environ, "SWARM_COORDINATOR": up.address}
        generated = swarm_command("generate", "--max-tokens", "8", "--temperature", "0", "Hello world", env=env)
        assert generated.returncode == 0, generated.stderr
        assert len(generated.stdout.strip()) > 0
        assert "8 generated tokens" in generated.stderr
        table = swarm_command("status", env=env)
        assert "2 of 2 workers up" in table.stdout
    finally:
        code = up.interrupt()
    assert code == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_swarm_up_runs_several_coordinators_on_consecutive_ports_each_serving_the_swarm(
    tmp_path: Path, tiny_model: Path
) -> None:
    up = SwarmUp(
        tmp_path, "--model", str(tiny_model), "--workers", "2", "--threads", "1", "--coordinators", "2", coordinators=2
    )
    try:
        output = up.read_until("swarm is up")
        second = f"127.0.0.1:{up.port + 1}"
        assert f"gRPC   {up.address}" in output
        assert f"gRPC   {second}" in output
        assert f"http://127.0.0.1:{up.http_port + 1}/" in output
        children = psutil.Process(up.process.pid).children(recursive=True)
        assert len(children) == 5  # redis-server, two coordinators, two workers
        joins = [c.cmdline() for c in children if "join" in c.cmdline()]
        # Every worker has both coordinators, starting at a different one: it heartbeats through either.
        assert sorted(cmdline[cmdline.index("join") + 1] for cmdline in joins) == [
            f"{up.address},{second}",
            f"{second},{up.address}",
        ]
        for address in (up.address, second):
            generated = swarm_command(
                "generate", "--coordinator", address, "--max-tokens", "4", "--temperature", "0", "Hello world"
            )
            assert generated.returncode == 0, generated.stderr
            assert "4 generated tokens" in generated.stderr
    finally:
        code = up.interrupt()
    assert code == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_swarm_up_says_how_to_install_redis_when_it_is_missing(tmp_path: Path, tiny_model: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    result = swarm_command("up", "--model", str(tiny_model), "--port", str(free_port()), env=env)
    assert result.returncode == 1
    assert "redis-server was not found" in result.stderr
    assert "apt-get install -y redis-server" in result.stderr


def test_swarm_up_refuses_coordinator_ports_that_overlap_their_http_ports(tiny_model: Path) -> None:
    result = swarm_command(
        "up", "--model", str(tiny_model), "--coordinators", "2", "--port", "40100", "--http-port", "40101"
    )
    assert result.returncode == 2
    assert "--port 40100 to 40101 and --http-port 40101 to 40102: the two ranges overlap" in result.stderr


def test_generate_against_no_coordinator_fails_with_a_clear_message() -> None:
    result = swarm_command("generate", "--coordinator", f"127.0.0.1:{free_port()}", "hi", timeout=120)
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_quick_start_on_gemma_matches_llama_cpp_python(tmp_path: Path, gemma_model: Path) -> None:
    """The README's quick start on the real default model: its demo text equals llama-cpp-python's."""
    up = SwarmUp(tmp_path, "--model", str(gemma_model), "--workers", "2", "--threads", "1")
    try:
        output = up.read_until("swarm is up")
    finally:
        assert up.interrupt() == 0
    demo = output.split(f"> {DEMO_PROMPT}", 1)[1].split("\nswarm is up", 1)[0].rstrip("\n")
    llm = llama_cpp.Llama(str(gemma_model), n_ctx=512, n_threads=1, verbose=False)
    expected = llm.create_completion(DEMO_PROMPT, max_tokens=48, temperature=0.0)["choices"][0]["text"]
    llm.close()
    assert demo == expected
    assert len(demo.split()) > 5


def test_split_writes_stage_files_and_a_manifest(tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "four.gguf", seed=0, n_layer=4)
    result = swarm_command("split", str(model), "--stages", "2", "--out", str(tmp_path / "stages"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "stages" / "manifest.json").read_text())
    assert [(s["layer_start"], s["layer_end"]) for s in manifest["stages"]] == [(0, 2), (2, 4)]
    assert "stage 1: layers 2-3" in result.stdout
    missing = swarm_command("split", str(tmp_path / "nope.gguf"), "--stages", "2", "--out", str(tmp_path / "x"))
    assert missing.returncode == 2 and "model file not found" in missing.stderr


def test_swarm_up_serves_a_two_stage_pipeline_with_the_whole_models_text(tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "four.gguf", seed=0, n_layer=4)
    up = SwarmUp(tmp_path, "--model", str(model), "--workers", "2", "--stages", "2", "--threads", "1", "--no-demo")
    try:
        up.read_until("swarm is up")
        assert len(psutil.Process(up.process.pid).children(recursive=True)) == 4  # redis, coordinator, 2 stages
        with SwarmClient(up.address) as client:
            got = [client.generate(p, max_tokens=16, temperature=0.0) for p in ("Hello world", "The quick brown")]
            assert [(m.name, m.workers_up) for m in client.list_models()] == [("four", 1)]  # the head takes requests
            roles = sorted(w.info.role for w in client.status().workers if w.up)
            assert roles == ["stage 1/2 L0-1", "stage 2/2 L2-3"]
    finally:
        assert up.interrupt() == 0
    llm = llama_cpp.Llama(str(model), n_ctx=256, n_threads=1, verbose=False)
    for completion, prompt in zip(got, ("Hello world", "The quick brown"), strict=True):
        expected = llm.create_completion(prompt, max_tokens=16, temperature=0.0)["choices"][0]["text"]
        assert completion.text == expected
    llm.close()


def test_swarm_up_refuses_stages_that_do_not_match_workers(tmp_path: Path, tiny_model: Path) -> None:
    result = swarm_command("up", "--model", str(tiny_model), "--workers", "3", "--stages", "2")
    assert result.returncode == 2
    assert "--workers K" in result.stderr


def test_ctrl_c_stops_swarm_up_started_with_sigint_ignored_quietly_and_completely(
    tmp_path: Path, tiny_model: Path
) -> None:
    """Started as a script's background job (SIGINT ignored), Ctrl-C still stops it; workers leave before the
    coordinator, so nothing complains, and llama.cpp's own warnings stay out of an info-level log."""
    up = SwarmUp(
        tmp_path, "--model", str(tiny_model), "--threads", "1", "--no-demo", log_level="info", ignore_sigint=True
    )
    try:
        up.read_until("swarm is up")
        children = up.children()
        assert len(children) == 4  # redis-server, coordinator, two workers
    finally:
        code = up.interrupt(whole_group=True, timeout_s=30)
    output = "".join(up.output)
    assert code == 0, output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert output.count("INFO swarm.worker.process: worker ") == 2, output  # each worker's "stopped after" line
    assert "coordinator stopped after" in output, output
    for noise in ("could not deregister", "could not announce", "llama.cpp:", "Traceback"):
        assert noise not in output, output


def test_kill_int_stops_swarm_up_started_with_sigint_ignored(tmp_path: Path, tiny_model: Path) -> None:
    up = SwarmUp(
        tmp_path, "--model", str(tiny_model), "--workers", "1", "--threads", "1", "--no-demo", ignore_sigint=True
    )
    try:
        up.read_until("swarm is up")
        children = up.children()
    finally:
        code = up.interrupt(timeout_s=30)
    assert code == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_swarm_up_at_debug_level_shows_llama_cpps_own_log(tmp_path: Path, tiny_model: Path) -> None:
    up = SwarmUp(
        tmp_path, "--model", str(tiny_model), "--workers", "1", "--threads", "1", "--no-demo", log_level="debug"
    )
    try:
        up.read_until("swarm is up")
    finally:
        assert up.interrupt(timeout_s=30) == 0
    assert "DEBUG swarm.engine.llama_adapter.backend: llama.cpp: " in "".join(up.output)


def test_a_second_ctrl_c_while_stopping_still_stops_every_child(tmp_path: Path, tiny_model: Path) -> None:
    up = SwarmUp(tmp_path, "--model", str(tiny_model), "--threads", "1", "--no-demo")
    try:
        up.read_until("swarm is up")
        children = up.children()
        up.process.send_signal(signal.SIGINT)
        up.read_until("stopping the swarm", timeout_s=10)
    finally:
        code = up.interrupt(timeout_s=30)  # the impatient second Ctrl-C, while the workers are leaving
    assert code == 0, "".join(up.output)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
