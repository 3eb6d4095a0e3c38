"""The JSON shape of the swarm's status, shared by `swarm status --json` and the coordinator's HTTP side."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from swarm.shared.types import SwarmStatus


def status_to_json(status: SwarmStatus) -> dict[str, Any]:
    return {
        "default_model": status.default_model,
        "queue_depth": status.queue_depth,
        "workers": [
            {
                **asdict(w.info),
                **asdict(w.load),
                "state": w.state.value,
                "last_heartbeat_age_s": round(w.heartbeat_age_s, 3),
            }
            for w in status.workers
        ],
    }
