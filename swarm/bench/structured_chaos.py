"""Schema-constrained answers under worker kills: N requests at concurrency C while a worker is SIGKILLed (and
restarted) every K seconds; every answer must arrive once, parse and match its schema.

The swarm is real (redis-server, a coordinator, W workers on the default model, loopback gRPC). Requests go
through SwarmClient with the schema's GBNF grammar, seeded sampling at temperature 0.8 so answers differ;
a killed worker's streams fail over and resume after the tokens their clients have, the grammar rebuilt
from them. A worker that dies without a kill is counted as a crash (with its exit code) and restarted.
Prints valid, invalid and failed counts, kills, crashes and throughput.

    python -m swarm.bench.structured_chaos --requests 1000 --concurrency 16 --workers 3 --kill-every 5
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]

from swarm.bench.grammar_decode import PERSON_SCHEMA, PROMPT
from swarm.bench.swarm_load import wait_for_a_worker
from swarm.client import SwarmCallError, SwarmClient
from swarm.gguf_files.default_model import resolve_model
from swarm.launch.local_swarm import LocalSwarm, ManagedProcess, free_port, interrupt_on_stop_signals
from swarm.shared.json_schema_grammar import schema_grammar
from swarm.shared.types import FinishReason


@dataclass(frozen=True)
class Answer:
    valid: bool
    error: str  # "" when it arrived
    tokens: int
    seconds: float
    cut: bool = False  # max_tokens ended it: the grammar was not complete, so it need not parse
    problem: str = ""  # why a finished answer does not conform, with its text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between SIGKILLs; 0: none")
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--model", default="default")
    parser.add_argument("--log-dir", default="", help="keep the processes' logs here (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    interrupt_on_stop_signals()
    grammar = schema_grammar(PERSON_SCHEMA, "schema")
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as scratch:
        logs = Path(args.log_dir or scratch)
        logs.mkdir(parents=True, exist_ok=True)
        swarm = LocalSwarm(log_dir=logs)
        try:
            swarm.start_redis(Path(scratch) / "redis")
            address = f"127.0.0.1:{free_port()}"
            swarm.start_coordinator(address)
            flags = ("--threads", str(args.threads), "--slots", str(args.slots), "--context", "1024")
            model = resolve_model(args.model)
            workers = [
                swarm.start_worker(address, model, *flags, "--worker-id", f"w{i}", name=f"w{i}")
                for i in range(args.workers)
            ]
            wait_for_a_worker(address, 180.0, args.workers)
            answers, kills, crashes, seconds = run(address, grammar, workers, args)
        finally:
            swarm.stop()
    report(answers, kills, crashes, seconds, args)
    return 0 if all(a.valid and not a.error for a in answers) and not crashes else 1


def run(
    address: str, grammar: str, workers: list[ManagedProcess], args: argparse.Namespace
) -> tuple[list[Answer], int, list[str], float]:
    done = threading.Event()
    kills = 0
    crashes: list[str] = []

    lock = threading.Lock()  # a kill and its restart are one step: the crash watch must not see between them

    def chaos() -> None:  # one worker at a time: the others serve while it restarts
        nonlocal kills
        rng = random.Random(7)
        while args.kill_every and not done.wait(args.kill_every):
            victim = rng.choice(workers)
            with lock:
                victim.kill()
                kills += 1
                victim.start()

    def crash_watch() -> None:  # a worker that died without a kill is a finding: count it, then serve on
        while not done.wait(0.2):
            with lock:
                for worker in workers:
                    if worker.process is not None and worker.process.poll() is not None:
                        crashes.append(f"{worker.name} exited with {worker.process.returncode}")
                        print(f"crash: {crashes[-1]} at {time.perf_counter() - started:.0f} s", flush=True)
                        worker.start()

    def ask(i: int) -> Answer:
        started = time.perf_counter()
        try:
            with SwarmClient(address, retries=8) as client:
                answer = client.generate(
                    PROMPT, max_tokens=args.max_tokens, temperature=0.8, seed=i, grammar=grammar, request_id=f"s-{i}"
                )
        except SwarmCallError as exc:
            return Answer(False, f"s-{i}: {exc}", 0, time.perf_counter() - started)
        cut = answer.finished.reason is FinishReason.LENGTH
        problem = ""
        try:
            jsonschema.validate(json.loads(answer.text), PERSON_SCHEMA)
        except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
            problem = f"{str(exc).splitlines()[0]} in {answer.text!r} (worker {answer.finished.worker_id})"
        seconds = time.perf_counter() - started
        return Answer(not problem, "", answer.finished.completion_tokens, seconds, cut, problem)

    killer = threading.Thread(target=chaos, name="chaos")
    watch = threading.Thread(target=crash_watch, name="crash-watch")
    started = time.perf_counter()
    killer.start()
    watch.start()
    try:
        with ThreadPoolExecutor(args.concurrency) as pool:
            answers = list(pool.map(ask, range(args.requests)))
    finally:
        done.set()
        killer.join()
        watch.join()
    return answers, kills, crashes, time.perf_counter() - started


def report(answers: list[Answer], kills: int, crashes: list[str], seconds: float, args: argparse.Namespace) -> None:
    failed = [a.error for a in answers if a.error]
    invalid = sum(1 for a in answers if not a.error and not a.valid and not a.cut)
    cut = sum(1 for a in answers if not a.error and a.cut)
    tokens = sum(a.tokens for a in answers)
    latencies = [a.seconds for a in answers if not a.error]
    print(
        f"requests={len(answers)} valid={sum(a.valid for a in answers)} invalid={invalid} "
        f"cut by max_tokens={cut} failed={len(failed)} "
        f"kills={kills} (every {args.kill_every:g} s, {args.workers} workers) crashes={len(crashes)} "
        f"concurrency={args.concurrency}"
    )
    print(
        f"elapsed={seconds:.0f} s  completion tokens={tokens}  {tokens / seconds:.1f} tok/s  "
        f"median answer {statistics.median(latencies) if latencies else 0:.1f} s"
    )
    for error in failed[:3]:
        print(f"  failed: {error}")
    for answer in [a for a in answers if a.problem and not a.cut][:3]:
        print(f"  invalid: {answer.problem}")


if __name__ == "__main__":
    raise SystemExit(main())
