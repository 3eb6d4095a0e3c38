"""PlanStore: the StageAssigner's state in Redis, as JSON, so the plan outlives a coordinator."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.planning.assigner import PlanState
from swarm.coordinator.planning.planner import ModelPlan, StageAssignment
from swarm.shared.plan_messages import NodeAssignment, NodeOffer


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
        tuple(StageAssignment(int(start), int(end), tuple(str(n) for n in nodes)) for start, end, nodes in pipe)
        for pipe in data["pipelines"]
    )
    return ModelPlan(str(data["model"]), tuple(str(n) for n in data["whole"]), pipelines)


def state_to_json(state: PlanState) -> str:
    return json.dumps(
        {
            "offers": [
                {"node_id": o.node_id, "address": o.address, "free_bytes": o.free_bytes, "speed": o.speed, "asked": t}
                for o, t in state.offers
            ],
            "serving": {node: _assignment_to_dict(part) for node, part in state.serving},
            "plan": _plan_to_dict(state.plan) if state.plan is not None else None,
        },
        separators=(",", ":"),
    )


def state_from_json(text: str) -> PlanState:
    data = json.loads(text)
    offers = tuple(
        (NodeOffer(str(o["node_id"]), str(o["address"]), int(o["free_bytes"]), float(o["speed"])), float(o["asked"]))
        for o in data["offers"]
    )
    serving = tuple((str(node), _assignment_from_dict(part)) for node, part in data["serving"].items())
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
