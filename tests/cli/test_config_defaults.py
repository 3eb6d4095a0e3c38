"""The command line takes its defaults from the config dataclasses: a flag left out means the config's default."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.cli.config_defaults import default_of, default_port
from swarm.cli.coordinator_command import coordinator_config
from swarm.cli.main import build_parser
from swarm.cli.worker_launch import join_config
from swarm.coordinator.config import CoordinatorConfig
from swarm.deploy.ray_fleet import RayFleetConfig
from swarm.worker.config import WorkerConfig


@pytest.fixture(autouse=True)
def no_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SWARM_REDIS", "SWARM_TOKEN", "SWARM_API_KEYS", "SWARM_COORDINATOR"):
        monkeypatch.delenv(name, raising=False)


def test_coordinator_without_flags_is_the_default_config() -> None:
    args = build_parser().parse_args(["coordinator"])
    assert coordinator_config(args) == CoordinatorConfig()


def test_join_without_flags_is_the_default_worker_config(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    args = build_parser().parse_args(["join", "127.0.0.1:50051", "--model", str(model)])
    assert join_config(args, "127.0.0.1:50051", None, model) == WorkerConfig("127.0.0.1:50051", model)


def test_up_and_ray_up_defaults_are_the_configs() -> None:
    up = build_parser().parse_args(["up"])
    assert (up.port, up.http_port) == (
        default_port(CoordinatorConfig, "listen"),
        default_port(CoordinatorConfig, "http"),
    )
    assert up.slots == default_of(WorkerConfig, "slots")
    ray = build_parser().parse_args(["ray", "up", "--workers", "2"])
    fleet = RayFleetConfig(
        ray_address=ray.address,
        workers=2,
        threads=ray.threads,
        slots=ray.slots,
        context=ray.context,
        model=ray.model,
        pack=ray.pack,
        listen_host=ray.listen_host,
        advertise_host=ray.advertise_host,
    )
    assert fleet == RayFleetConfig(ray_address=ray.address, workers=2)


def test_a_field_without_a_default_is_named() -> None:
    with pytest.raises(TypeError, match=r"WorkerConfig\.coordinator has no default"):
        default_of(WorkerConfig, "coordinator")
    with pytest.raises(TypeError, match="has no field nope"):
        default_of(WorkerConfig, "nope")


def test_steps_in_flight_default_to_one_per_stage_and_take_lock_step_on_request(tmp_path: Path) -> None:
    model = tmp_path / "m.stage0-of-2.gguf"
    args = build_parser().parse_args(["join", "127.0.0.1:50051", "--model", str(model), "--steps-in-flight", "1"])
    assert join_config(args, "127.0.0.1:50051", None, model).steps_in_flight == 1
    assert WorkerConfig("127.0.0.1:50051", model).steps_in_flight == 0  # build_engine: one per stage
    with pytest.raises(ValueError, match="steps-in-flight"):
        WorkerConfig("127.0.0.1:50051", model, steps_in_flight=-1)


def test_speculate_always_verifies_every_proposal_and_needs_speculation(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    configs = {
        value: join_config(
            build_parser().parse_args(["join", "127.0.0.1:50051", "--model", str(model), "--speculate", value]),
            "127.0.0.1:50051",
            None,
            model,
        )
        for value in ("off", "on", "always")
    }
    assert {value: (c.speculate, c.speculate_always) for value, c in configs.items()} == {
        "off": (False, False),
        "on": (True, False),
        "always": (True, True),
    }
    with pytest.raises(ValueError, match="speculate_always needs speculate"):
        WorkerConfig("127.0.0.1:50051", model, speculate_always=True)
