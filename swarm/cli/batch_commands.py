"""`swarm batch submit|status|results|list|cancel`: durable batch jobs from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from tqdm import tqdm

from swarm.cli.security_flags import add_client_flags, client_api_key, tls_from_args
from swarm.client import BatchClient, SwarmCallError
from swarm.client.batch_file import parse_batch_file, result_to_json_line
from swarm.shared.addresses import DEFAULT_COORDINATOR
from swarm.shared.batch_types import BatchState, BatchSummary
from swarm.shared.batch_validation import InvalidBatchLine

WATCH_INTERVAL_S = 1.0


def add_parsers(commands: Any) -> None:
    coordinator_help = (
        "coordinator HOST:PORT, or several comma-separated to fail over between "
        f"(default $SWARM_COORDINATOR or {DEFAULT_COORDINATOR})"
    )
    batch = commands.add_parser("batch", help="durable offline jobs: many requests from a JSONL file")
    actions = batch.add_subparsers(dest="batch_command", required=True, metavar="ACTION")

    submit = actions.add_parser("submit", help="submit a JSONL file (one request a line); prints the job id")
    submit.add_argument("file", type=Path, help='JSONL: {"prompt": ..., "max_tokens": ..., "id": ...} per line')
    submit.add_argument("--model", default="", help="model for lines that name none (default: the swarm's)")
    submit.set_defaults(run=run_submit)

    status = actions.add_parser("status", help="a job's progress")
    status.add_argument("job_id")
    status.add_argument("--watch", action="store_true", help="show a progress bar until the job finishes")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=run_status)

    results = actions.add_parser("results", help="write a job's results as JSONL, in input order")
    results.add_argument("job_id")
    results.add_argument("-o", "--output", default="-", help="output file (default: standard output)")
    results.add_argument("--partial", action="store_true", help="write the lines finished so far of a running job")
    results.set_defaults(run=run_results)

    listing = actions.add_parser("list", help="the jobs the swarm holds, newest first")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_list)

    cancel = actions.add_parser("cancel", help="stop a job: lines not started are skipped")
    cancel.add_argument("job_id")
    cancel.set_defaults(run=run_cancel)

    for action in (submit, status, results, listing, cancel):
        action.add_argument("--coordinator", default=None, help=coordinator_help)
        add_client_flags(action)


def open_batch_client(args: argparse.Namespace) -> BatchClient:
    """A client of the coordinators the flags name, with their API key and TLS files; exits 2 on a bad flag."""
    try:
        return BatchClient(args.coordinator, api_key=client_api_key(args), tls=tls_from_args(args))
    except ValueError as exc:
        raise SystemExit(_fail(args.batch_command, str(exc), code=2)) from None


def run_submit(args: argparse.Namespace) -> int:
    try:
        lines = parse_batch_file(args.file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return _fail("submit", f"cannot read {args.file}: {exc}")
    except InvalidBatchLine as exc:
        return _fail("submit", f"{args.file}: {exc} (nothing submitted)")
    with open_batch_client(args) as client:
        try:
            job = client.submit(lines, model=args.model)
        except SwarmCallError as exc:
            return _fail("submit", f"{args.file}: {exc} (nothing submitted)")
    print(f"submitted {job.total} lines as job {job.job_id}", file=sys.stderr)
    print(job.job_id)
    return 0


def run_status(args: argparse.Namespace) -> int:
    with open_batch_client(args) as client:
        try:
            job = client.get(args.job_id)
            if args.watch:
                job = _watch(client, job)
        except SwarmCallError as exc:
            return _fail("status", str(exc))
    print(json.dumps(summary_to_json(job)) if args.json else summary_line(job))
    return 0


def _watch(client: BatchClient, job: BatchSummary) -> BatchSummary:
    with tqdm(total=job.total, unit="line", desc=job.job_id, file=sys.stderr) as bar:
        while True:
            bar.update(job.finished_lines - bar.n)
            bar.set_postfix(failed=job.failed, refresh=False)
            if job.state != BatchState.RUNNING:
                return job
            time.sleep(WATCH_INTERVAL_S)
            try:
                job = client.get(job.job_id)
            except SwarmCallError as exc:
                if exc.code != grpc.StatusCode.UNAVAILABLE:  # a coordinator restarting: keep watching
                    raise


def run_results(args: argparse.Namespace) -> int:
    with open_batch_client(args) as client:
        try:
            rows = [result_to_json_line(r) + "\n" for r in client.results(args.job_id, partial=args.partial)]
        except SwarmCallError as exc:
            return _fail("results", str(exc))
    text = "".join(rows)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(rows)} results to {args.output}", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_batch_client(args) as client:
        try:
            jobs = client.list()
        except SwarmCallError as exc:
            return _fail("list", str(exc))
    if args.json:
        print(json.dumps([summary_to_json(j) for j in jobs], indent=2))
    else:
        print("\n".join(summary_line(j) for j in jobs) if jobs else "no batch jobs")
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    with open_batch_client(args) as client:
        try:
            job = client.cancel(args.job_id)
        except SwarmCallError as exc:
            return _fail("cancel", str(exc))
    print(summary_line(job))
    return 0


def summary_line(job: BatchSummary) -> str:
    created = datetime.fromtimestamp(job.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    percent = 100 * job.finished_lines // job.total if job.total else 100
    return (
        f"{job.job_id}  {job.state.value:<9}  {job.done} done, {job.failed} failed of {job.total} "
        f"({percent}%)  created {created}"
    )


def summary_to_json(job: BatchSummary) -> dict[str, Any]:
    return {**asdict(job), "state": job.state.value}


def _fail(action: str, message: str, code: int = 1) -> int:
    print(f"swarm batch {action}: {message}", file=sys.stderr)
    return code
