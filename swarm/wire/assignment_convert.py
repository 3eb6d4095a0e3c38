"""Wire conversion of planning messages: a worker's offer in, its part of the plan out, its measurements in."""

from __future__ import annotations

from swarm.shared.plan_messages import RETRY_AFTER_S, AssignmentReply, LinkSample, NodeOffer, StageMeasurement
from swarm.shared.types import NodeId
from swarm.wire import swarm_pb2 as pb


def offer_from_wire(msg: pb.AssignRequest) -> NodeOffer:
    return NodeOffer(
        node_id=NodeId(msg.node_id),
        address=msg.address,
        free_bytes=msg.free_bytes,
        speed=msg.speed,
        slots=msg.slots,
        context_length=msg.context_length,
    )


def assignment_to_wire(reply: AssignmentReply) -> pb.AssignResponse:
    part = reply.assignment
    if part is None:
        return pb.AssignResponse(retry_after_s=RETRY_AFTER_S, message=reply.message)
    whole = len(part.layout) == 1
    start, end = part.layout[part.stage_index]
    return pb.AssignResponse(
        model=reply.model,
        split=reply.split,
        stage_index=0 if whole else part.stage_index,
        stage_count=0 if whole else len(part.layout),
        layer_start=start,
        layer_end=end,
        next_stage=part.next_stage,
    )


def measurement_to_wire(measured: StageMeasurement) -> pb.StageMeasurement:
    return pb.StageMeasurement(
        decode_seconds_per_token=measured.decode_seconds_per_token,
        decode_tokens=measured.decode_tokens,
        links=[pb.LinkMeasurement(peer=i.peer, rtt_s=i.rtt_s, bytes_per_s=i.bytes_per_s) for i in measured.links],
    )


def measurement_from_wire(msg: pb.StageMeasurement) -> StageMeasurement:
    return StageMeasurement(
        decode_seconds_per_token=msg.decode_seconds_per_token,
        decode_tokens=msg.decode_tokens,
        links=tuple(LinkSample(i.peer, i.rtt_s, i.bytes_per_s) for i in msg.links),
    )
