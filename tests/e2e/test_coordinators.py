"""Two active coordinators on one Redis: ten times, the one holding a stream is SIGKILLed and the other finishes it."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarm.client import SwarmClient
from swarm.launch.local_swarm import ManagedProcess, free_port, wait_until
from swarm.shared.types import Finished, TextPiece
from tests.conftest import RunningSwarm, coordinator_answers
from tests.e2e.test_coordinator_restart import MakeSwarm

pytestmark = pytest.mark.timeout(120)

PROMPT = "Once upon a time"
MAX_TOKENS = 48
KILLS = 10
# A kill this many tokens from the end may find the rest already in the client's receive buffer: the
# stream then finishes without failing over, and the round is played again (a few times at most).
END_MARGIN = 16
LATE_KILLS_ALLOWED = 4


@dataclass
class Coordinator:
    address: str
    process: ManagedProcess

    def answers(self) -> bool:
        return coordinator_answers(self.address, timeout_s=1)


@dataclass
class Round:
    kill_after: int  # tokens the client had received when its coordinator was SIGKILLed
    tokens: list[int]
    finished: Finished | None
    path: list[tuple[str, int]]  # each coordinator the client read from, with the tokens it had by then
    gap_s: float | None  # from the kill to the next token the client got (through the other coordinator)

    @property
    def failed_over(self) -> bool:
        return len(self.path) > 1


def run_round(index: int, holder: Coordinator, other: Coordinator, kill_after: int) -> Round:
    """One stream started on `holder`, which is SIGKILLed (and restarted) after `kill_after` tokens."""
    tokens: list[int] = []
    finished = None
    killed = False
    killed_at = resumed_at = 0.0
    path: list[tuple[str, int]] = []
    with SwarmClient([holder.address, other.address], retries=10) as client:
        stream = client.stream(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0, request_id=f"round-{index}")
        for event in stream:
            if not path or path[-1][0] != client.address:
                path.append((client.address, len(tokens)))
            if isinstance(event, TextPiece):
                tokens.extend(event.token_ids)
                if killed and not resumed_at:
                    resumed_at = time.monotonic()
                if not killed and len(tokens) >= kill_after:
                    assert client.address == holder.address, "the stream starts on the first address"
                    holder.process.kill()
                    killed_at = time.monotonic()
                    killed = True
                    holder.process.start()  # the swarm has two coordinators again by the next round
            elif isinstance(event, Finished):
                finished = event
        return Round(kill_after, tokens, finished, path, resumed_at - killed_at if resumed_at else None)


def test_ten_sigkills_of_the_coordinator_holding_a_stream_each_finish_through_the_other_exactly(
    make_swarm: MakeSwarm, slow_model: Path
) -> None:
    swarm: RunningSwarm = make_swarm(workers=0, model=slow_model)
    a = Coordinator(swarm.address, swarm.coordinator)
    b_address = f"127.0.0.1:{free_port()}"
    b_process = swarm.processes.start_coordinator(b_address, f"127.0.0.1:{free_port()}", name="coordinator-b")
    b = Coordinator(b_address, b_process)
    # Every worker knows both coordinators, so its heartbeats move on whenever one is killed. One
    # slot each: every stream decodes alone, so a resumed one must match the unfailed run exactly.
    for i in range(3):
        swarm.processes.start_worker(
            f"{a.address},{b.address}", slow_model, "--threads", "1", "--slots", "1", "--context", "1024", name=f"w{i}"
        )
    swarm.wait_for_workers(3)
    wait_until(b.answers, 30, "coordinator B")
    with SwarmClient(b.address) as client:
        reference = client.generate(PROMPT, max_tokens=MAX_TOKENS, temperature=0.0)
    assert reference.finished.completion_tokens == MAX_TOKENS

    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    rounds: list[Round] = []
    started = time.monotonic()
    while sum(r.failed_over for r in rounds) < KILLS and len(rounds) < KILLS + LATE_KILLS_ALLOWED:
        index = len(rounds)
        holder, other = (a, b) if index % 2 == 0 else (b, a)
        wait_until(other.answers, 30, f"{other.address} back up before round {index}")
        rounds.append(run_round(index, holder, other, rng.randint(1, MAX_TOKENS - END_MARGIN)))
        gap = rounds[-1].gap_s
        print(
            f"round {index}: SIGKILLed after {rounds[-1].kill_after} tokens, {time.monotonic() - started:.1f} s; "
            f"next token {'-' if gap is None else f'{gap:.2f} s'} after the kill"
        )

    gaps = sorted(r.gap_s for r in rounds if r.failed_over and r.gap_s is not None)
    if gaps:
        print(f"kill to next token: median {gaps[len(gaps) // 2]:.2f} s, max {gaps[-1]:.2f} s over {len(gaps)} kills")
    for index, played in enumerate(rounds):
        where = f"round {index} (seed {seed}), killed after {played.kill_after} tokens"
        assert played.finished is not None, f"{where}: no finish"
        assert tuple(played.tokens) == reference.token_ids, f"{where}: the text differs from an unfailed run"
        assert played.finished.completion_tokens == MAX_TOKENS, where
        holder, other = (a, b) if index % 2 == 0 else (b, a)
        if played.failed_over:
            assert [address for address, _ in played.path] == [holder.address, other.address], (where, played.path)
    late = [i for i, r in enumerate(rounds) if not r.failed_over]
    assert len(rounds) - len(late) == KILLS, f"rounds {late} were delivered whole before their kill"
    logs = "".join(c.process.log_tail(10**7) for c in (a, b))
    resumed_after = {
        int(m.group(1)): int(m.group(2)) for m in re.finditer(r"requeueing round-(\d+) after (\d+) pieces", logs)
    }
    # A kill after the last piece was journalled lets the other coordinator deliver the kept result instead.
    assert len(resumed_after) >= KILLS // 2, f"few rounds were taken over mid-run: {resumed_after}"
