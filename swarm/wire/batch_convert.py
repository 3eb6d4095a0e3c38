"""Converts batch job messages between protobuf and the dataclasses of swarm.shared.batch_types."""

from __future__ import annotations

from dataclasses import replace

from swarm.shared.batch_types import BatchLine, BatchResult, BatchState, BatchSummary
from swarm.wire import swarm_pb2 as pb
from swarm.wire.convert import REASON_FROM_WIRE, REASON_TO_WIRE, raw_request_from_wire

_STATE_TO_WIRE = {
    BatchState.RUNNING: pb.BATCH_STATE_RUNNING,
    BatchState.DONE: pb.BATCH_STATE_DONE,
    BatchState.CANCELLED: pb.BATCH_STATE_CANCELLED,
}
_STATE_FROM_WIRE = {v: k for k, v in _STATE_TO_WIRE.items()}


def batch_line_from_wire(msg: pb.GenerateRequest) -> BatchLine:
    """A line's request_id is its custom id on the wire; the batch picks the swarm request id."""
    raw = raw_request_from_wire(msg)
    return BatchLine(replace(raw, request_id=""), custom_id=raw.request_id)


def batch_summary_to_wire(summary: BatchSummary) -> pb.BatchJob:
    return pb.BatchJob(
        job_id=summary.job_id,
        state=_STATE_TO_WIRE[summary.state],
        total=summary.total,
        done=summary.done,
        failed=summary.failed,
        created_ms=summary.created_ms,
        finished_ms=summary.finished_ms,
        model=summary.model,
    )


def batch_summary_from_wire(msg: pb.BatchJob) -> BatchSummary:
    return BatchSummary(
        job_id=msg.job_id,
        state=_STATE_FROM_WIRE.get(msg.state, BatchState.RUNNING),
        total=msg.total,
        done=msg.done,
        failed=msg.failed,
        created_ms=msg.created_ms,
        finished_ms=msg.finished_ms,
        model=msg.model,
    )


def batch_result_to_wire(result: BatchResult) -> pb.BatchResult:
    return pb.BatchResult(
        line=result.line,
        custom_id=result.custom_id,
        text=result.text,
        finish_reason=REASON_TO_WIRE[result.finish_reason] if result.finish_reason else pb.FINISH_REASON_UNSPECIFIED,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        error=result.error,
    )


def batch_result_from_wire(msg: pb.BatchResult) -> BatchResult:
    return BatchResult(
        line=msg.line,
        custom_id=msg.custom_id,
        text=msg.text,
        finish_reason=REASON_FROM_WIRE.get(msg.finish_reason),
        prompt_tokens=msg.prompt_tokens,
        completion_tokens=msg.completion_tokens,
        error=msg.error,
    )
