"""PlanStore: the StageAssigner's state in Redis, as JSON, so the plan outlives a coordinator."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.planning.assigner import PlanState
from swarm.coordinator.planning.planner import ModelPlan, StageAssignment
from swarm.shared.plan_messages import NodeAssignment, NodeOffer
from swarm.shared.types import NodeId

# What `swarm join --auto` offers unless told otherwise; plans saved before offers carried it assume it.
_OFFER_BEFORE_KV = {"slots": 8, "context_length": 2048}


def _assignment_to_dict(part: NodeAssignment) -> dict[str, Any]:
    return {"layout": [list(r) for r in part.layout], "stage_index": part.stage_index, "next_stage": part.next_stage}


def _assignment_from_dict(data: dict[str, Any]) -> NodeAssignment:
    layout = tuple((int(start), int(end)) for start, end in data["layout"])
    return NodeAssignment(layout, int(data["stage_index"]), str(data["next_stage"]))


def _plan_to_dict(plan: ModelPlan) -> dict[str, Any]:
    return {
        "model": plan.model,
        "whole": list(plan.whole_replicas),
        "pipelines": [[[s.layer_start, s.layer_end, list(s.node_ids)] for s in pipe] for pipe in plan.pipelines],
    }


def _plan_from_dict(data: dict[str, Any]) -> ModelPlan:
    pipelines = tuple(
        tuple(StageAssignment(int(start), int(end), tuple(NodeId(str(n)) for n in nodes)) for start, end, nodes in pipe)
        for pipe in data["pipelines"]
    )
    return ModelPlan(str(data["model"]), tuple(NodeId(str(n)) for n in data["whole"]), pipelines)


def _offer_from_dict(data: dict[str, Any]) -> NodeOffer:
    return NodeOffer(
        node_id=NodeId(str(data["node_id"])),
        address=str(data["address"]),
        free_bytes=int(data["free_bytes"]),
        speed=float(data["speed"]),
        slots=int(data["slots"]),
        context_length=int(data["context_length"]),
    )


def state_to_json(state: PlanState) -> str:
    return json.dumps(
        {
            "offers": [{**asdict(offer), "asked": asked} for offer, asked in state.offers],
            "serving": {node: _assignment_to_dict(part) for node, part in state.serving},
            "plan": _plan_to_dict(state.plan) if state.plan is not None else None,
        },
        separators=(",", ":"),
    )


def state_from_json(text: str) -> PlanState:
    data = json.loads(text)
    offers = tuple((_offer_from_dict({**_OFFER_BEFORE_KV, **o}), float(o["asked"])) for o in data["offers"])
    serving = tuple((NodeId(str(node)), _assignment_from_dict(part)) for node, part in data["serving"].items())
    plan = _plan_from_dict(data["plan"]) if data["plan"] is not None else None
    return PlanState(offers, serving, plan)


class PlanStore:
    def __init__(self, redis: Redis, model: str) -> None:
        self._redis = redis
        self._key = keys.plan_key(model)
        self._saved = ""

    async def load(self) -> PlanState | None:
        text = await self._redis.get(self._key)
        if not text:
            return None
        self._saved = str(text)
        return state_from_json(self._saved)

    async def save(self, state: PlanState) -> None:
        """Writes the state when it changed since the last save or load."""
        text = state_to_json(state)
        if text != self._saved:
            await self._redis.set(self._key, text)
            self._saved = text
