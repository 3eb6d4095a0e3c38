"""Usage reports between their typed form (shared.usage_types) and the wire."""

from __future__ import annotations

from swarm.shared.usage_types import TokenCounts, UsageReport, UsageRow, WorkerBusy
from swarm.wire import swarm_pb2 as pb


def usage_to_wire(report: UsageReport) -> pb.UsageReport:
    return pb.UsageReport(
        since_hour=report.since_hour,
        rows=[
            pb.UsageRow(
                tenant=r.tenant,
                model=r.model,
                worker=r.worker,
                prompt_tokens=r.tokens.prompt,
                cached_prompt_tokens=r.tokens.cached_prompt,
                completion_tokens=r.tokens.completion,
                requests=r.tokens.requests,
            )
            for r in report.rows
        ],
        workers=[
            pb.UsageWorker(worker=w.worker, busy_seconds=w.busy_s, watts=w.watts, cost_per_hour=w.cost_per_hour)
            for w in report.workers
        ],
        seconds=report.seconds,
    )


def usage_from_wire(msg: pb.UsageReport) -> UsageReport:
    return UsageReport(
        since_hour=msg.since_hour,
        rows=tuple(
            UsageRow(
                r.tenant,
                r.model,
                r.worker,
                TokenCounts(r.prompt_tokens, r.cached_prompt_tokens, r.completion_tokens, r.requests),
            )
            for r in msg.rows
        ),
        workers=tuple(WorkerBusy(w.worker, w.busy_seconds, w.watts, w.cost_per_hour) for w in msg.workers),
        seconds=msg.seconds,
    )
