"""Coordinator relay capacity: tokens/s, streams and added per-token latency of ONE coordinator under load-test workers.

    python -m swarm.bench.coordinator_capacity --streams 1,10,100,1000 [--profile]
    python -m swarm.bench.coordinator_capacity --streams 200 --no-direct --limits --repeats 3   # key limits' cost

Starts its own redis-server, one real coordinator process and K load-test workers
(`swarm.bench.load_test_worker`, each its own process, emitting timestamped fake
tokens at a fixed rate per stream), all on 127.0.0.1. For each stream count S it
opens S concurrent Generate streams from separate client processes and measures the
relayed tokens/s while all S streams run, how many streams completed, the per-token
latency (client receive time minus the worker's send stamp in the piece text; p50 and
p99) and the time to first token. Unless `--no-direct`, each step is repeated with the
clients calling the workers' Run directly, so the latency the coordinator adds is the
difference of the two rows. It samples the CPU time of every process so the reader sees
who saturates, and with `--profile` samples the coordinator with py-spy (or, where
py-spy is missing, runs it under cProfile) and prints where its time goes.

Stream starts are spread over `--ramp` seconds and streams still running at the time
limit are cancelled `--cut-batch` at a time: a thousand simultaneous arrivals or
disconnects make the coordinator run more Redis commands at once than its connection
pool allows (`--ramp 0 --cut-batch 0` reproduces that).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
from pathlib import Path

from swarm.bench.capacity_bench import Bench
from swarm.bench.capacity_clients import CUT_INTERVAL_S
from swarm.bench.capacity_metrics import StepResult
from swarm.bench.capacity_report import report
from swarm.launch.local_swarm import interrupt_on_stop_signals

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m swarm.bench.coordinator_capacity",
        description="Measure what one coordinator relays, fed by load-test workers (benchmark only).",
    )
    parser.add_argument(
        "--streams", default="1,10,100,1000", help="comma-separated stream counts (default %(default)s)"
    )
    parser.add_argument("--tokens-per-stream", type=int, default=400, help="max_tokens of each stream (default 400)")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s each stream is fed at (default 50)")
    parser.add_argument("--load-workers", type=int, default=2, help="load-test worker processes (default 2)")
    parser.add_argument("--client-processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--streams-per-channel", type=int, default=100, help="streams per client connection")
    parser.add_argument(
        "--step-time-limit", type=float, default=15.0, help="cut streams still running after this many s (default 15)"
    )
    parser.add_argument(
        "--ramp", type=float, default=1.0, help="spread the stream starts over this many s (default %(default)s)"
    )
    parser.add_argument(
        "--cut-batch",
        type=int,
        default=20,
        help=f"at the time limit cancel this many streams per {CUT_INTERVAL_S:g} s; 0: all at once (default 20)",
    )
    parser.add_argument("--no-direct", action="store_true", help="skip the clients-to-workers baseline steps")
    parser.add_argument(
        "--coordinators",
        default="1",
        help="comma-separated coordinator counts to relay through, each a step of its own (default %(default)s)",
    )
    parser.add_argument(
        "--pin-coordinators", action="store_true", help="pin coordinator k to core k, the rest to the other cores"
    )
    parser.add_argument(
        "--limits",
        action="store_true",
        help="add a limits-on arm: coordinators require a key; each coordinator step also runs with a created key "
        "held to limits far above the load (requests/min, tokens/min, streams), the arms alternating",
    )
    parser.add_argument("--repeats", type=int, default=1, help="run every step this many times (default 1)")
    parser.add_argument("--profile", action="store_true", help="profile the coordinator (py-spy, else cProfile)")
    parser.add_argument("--profile-native", action="store_true", help="py-spy --native (pauses the coordinator)")
    parser.add_argument("--work-dir", type=Path, default=None, help="logs and profiles (default: a temp dir)")
    args = parser.parse_args(argv)
    try:
        args.stream_counts = [int(s) for s in args.streams.split(",") if s.strip()]
    except ValueError:
        parser.error("--streams takes comma-separated integers")
    try:
        args.coordinator_counts = [int(s) for s in args.coordinators.split(",") if s.strip()]
    except ValueError:
        parser.error("--coordinators takes comma-separated integers")
    if not args.coordinator_counts or not all(1 <= c <= 16 for c in args.coordinator_counts):
        parser.error("--coordinators: each count must be in 1..16")
    if not args.stream_counts or min(args.stream_counts) < 1 or max(args.stream_counts) > 5000:
        parser.error("--streams: each count must be in 1..5000")
    if not 1 <= args.tokens_per_stream <= 100_000 or args.rate <= 0:
        parser.error("--tokens-per-stream must be in 1..100000 and --rate positive")
    if not 1 <= args.load_workers <= 16 or not 1 <= args.client_processes <= 16 or args.streams_per_channel < 1:
        parser.error("--load-workers and --client-processes must be in 1..16, --streams-per-channel >= 1")
    if not 1 <= args.repeats <= 20:
        parser.error("--repeats must be in 1..20")
    if not 1 <= args.step_time_limit <= 300:
        parser.error("--step-time-limit must be in 1..300 s")
    if not 0 <= args.ramp < args.step_time_limit or args.cut_batch < 0:
        parser.error("--ramp must be in [0, step time limit) and --cut-batch >= 0")
    return args


def steps(args: argparse.Namespace) -> list[tuple[int, int, bool]]:
    """(streams, coordinators, limits on) of every step in order; with --limits the two arms alternate which
    goes first, repeat after repeat, so a drift in the machine's load favours neither."""
    order: list[tuple[int, int, bool]] = []
    for repeat in range(args.repeats):
        for streams in args.stream_counts:
            for coordinators in [*args.coordinator_counts, *([] if args.no_direct else [0])]:
                arms = [False, True] if args.limits and coordinators else [False]
                order += [(streams, coordinators, limited) for limited in (arms[::-1] if repeat % 2 else arms)]
    return order


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="swarm-capacity-")))
        else:
            work_dir = args.work_dir
            work_dir.mkdir(parents=True, exist_ok=True)
        # The handler stays installed after main returns; nothing needs the old one back, since main is this
        # process's entry point and the process exits when it returns.
        interrupt_on_stop_signals()
        bench = Bench(args, work_dir)
        rows: list[StepResult] = []
        try:
            bench.start()
            for streams, coordinators, limited in steps(args):
                via = f"via {coordinators} coordinator(s)" if coordinators else "direct to the workers"
                log.info("step: %d streams %s%s", streams, via, ", limits on" if limited else "")
                row = bench.run_step(streams, coordinators, len(rows), limited)
                log.info(
                    "  %s: %.0f tok/s, %d/%d/%d completed/cut/failed, coordinator CPU %.0f%%",
                    row.path,
                    row.relayed_tps,
                    row.completed,
                    row.cut,
                    row.failed,
                    row.cpu_percent["coordinator"],
                )
                rows.append(row)
        except KeyboardInterrupt:
            log.warning("interrupted; stopping every process")
            return 130
        finally:
            bench.stop()
        print(report(args, rows, bench.profiles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
