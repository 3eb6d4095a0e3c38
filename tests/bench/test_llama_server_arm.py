"""`swarm bench --against llama-server`: its flags, its table, and the one OpenAI client both arms get."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from swarm.bench.completions_load import (
    Completion,
    CompletionBody,
    CompletionFailed,
    LoadRun,
    measure_completions,
    summarize,
)
from swarm.bench.llama_server_arm import (
    Level,
    arm_order,
    built_llama_server,
    format_levels,
    http_ok,
    llama_server_argv,
    llama_server_binary,
    parse_levels,
)
from swarm.cli.main import build_parser
from swarm.launch.local_swarm import ManagedProcess, free_port, wait_until
from tests.conftest import RunningSwarm

MakeSwarm = Callable[..., RunningSwarm]


def test_against_flag_selects_the_llama_server_arm() -> None:
    args = build_parser(["bench"]).parse_args(
        ["bench", "--against", "llama-server", "--llama-server", "/opt/llama-server", "--repeats", "5"]
    )
    assert (args.against, args.llama_server, args.repeats) == ("llama-server", Path("/opt/llama-server"), 5)
    assert args.concurrency is None  # each arm picks its own default levels
    assert build_parser(["bench"]).parse_args(["bench"]).against == "bare"
    with pytest.raises(SystemExit):
        build_parser(["bench"]).parse_args(["bench", "--against", "vllm"])


def test_levels_must_fit_the_slots() -> None:
    assert parse_levels("1,8", slots=8) == [1, 8]
    for bad in ("1,16", "0", "one"):
        with pytest.raises(SystemExit):
            parse_levels(bad, slots=8)


def test_a_round_counts_every_token_over_first_send_to_last_answer() -> None:
    run = summarize([Completion(10.0, 12.0, 128), Completion(10.5, 14.0, 128), Completion(10.0, 13.0, 64)])
    assert run.streams == 3
    assert run.tokens_per_s == pytest.approx(320 / 4.0)
    assert run.completion_tokens == 320
    assert run.latency_p50_s == pytest.approx(3.0)
    with pytest.raises(ValueError):
        summarize([])


def _runs(*rates: float) -> list[LoadRun]:
    return [LoadRun(8, rate, 8 * 128, 1.0) for rate in rates]


def test_the_ratio_is_of_the_medians_and_each_round_is_shown() -> None:
    level = Level(8, llama_server=_runs(100.0, 90.0, 110.0), swarm=_runs(99.0, 120.0, 105.0))
    assert level.ratio == pytest.approx(105.0 / 100.0)
    assert level.round_ratios == pytest.approx([0.99, 120 / 90, 105 / 110])
    single = Level(1, llama_server=_runs(50.0), swarm=_runs(45.0))
    table = format_levels([single, level], "HEADER")
    assert table.startswith("HEADER\n")
    assert "| 1 | 50.0 | 45.0 | **0.90** | 0.90 | >= 0.97 (not met) |" in table
    assert "| 8 | 100.0 | 105.0 | **1.05** | 0.99, 1.33, 0.95 | >= 1.00 (met) | 128.0 / 128.0 | 1000 / 1000 |" in table


def test_the_arms_take_turns_going_first() -> None:
    firsts = [arm_order(r, 0)[0] for r in range(4)]
    assert firsts == ["swarm", "llama-server", "swarm", "llama-server"]
    assert arm_order(0, 1)[0] == "llama-server"  # the next level of the same round starts with the other arm
    assert sorted(arm_order(0, 0)) == ["llama-server", "swarm"]


def test_binary_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("SWARM_LLAMA_SERVER", raising=False)
    assert llama_server_binary() is None
    assert llama_server_binary(tmp_path / "missing") is None
    built = built_llama_server()
    assert built.is_relative_to(tmp_path / "cache" / "swarm" / "llama-server")
    built.parent.mkdir(parents=True)
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    assert llama_server_binary() == built
    named = tmp_path / "named-server"
    named.write_text("#!/bin/sh\n")
    named.chmod(0o755)
    monkeypatch.setenv("SWARM_LLAMA_SERVER", str(named))
    assert llama_server_binary() == named
    assert llama_server_binary(built) == built


def test_the_client_drives_the_swarms_openai_api(make_swarm: MakeSwarm) -> None:
    swarm = make_swarm()
    host, port = swarm.http.rsplit(":", 1)
    run = measure_completions(host, int(port), [CompletionBody(f"Prompt {i}", 8) for i in range(3)])
    assert run.streams == 3
    assert 3 <= run.completion_tokens <= 3 * 8
    assert run.tokens_per_s > 0
    with pytest.raises(CompletionFailed, match="400"):
        measure_completions(host, int(port), [CompletionBody("Prompt", 0)])


@pytest.mark.skipif(llama_server_binary() is None, reason="no llama-server (scripts/build_llama_server.sh builds it)")
def test_the_client_drives_llama_server(tiny_model: Path, tmp_path: Path) -> None:
    binary = llama_server_binary()
    assert binary is not None
    port = free_port()
    argv = llama_server_argv(binary, tiny_model, port, threads=1, slots=2, context=256)
    server = ManagedProcess("llama-server", argv, tmp_path / "llama-server.log").start()
    try:
        wait_until(lambda: http_ok("127.0.0.1", port, "/health") or not server.alive, 60, "llama-server")
        assert server.alive, (tmp_path / "llama-server.log").read_text()[-3000:]
        bodies = [CompletionBody(f"Prompt {i}", 8, (("ignore_eos", True),)) for i in range(2)]
        run = measure_completions("127.0.0.1", port, bodies)
    finally:
        server.stop()
    assert (run.streams, run.completion_tokens) == (2, 16)
