"""The order a worker tries its coordinators in, and the coordinator addresses it accepts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.worker.config import WorkerConfig
from swarm.worker.coordinators import CoordinatorRotation, coordinator_list, dialed_host_port


def counting_delays() -> Iterator[float]:
    return (float(n) for n in itertools.count(1))


def test_an_unreachable_coordinator_is_left_for_the_next_at_once_and_a_failed_round_backs_off() -> None:
    rotation = CoordinatorRotation(3, counting_delays)
    assert [(rotation.unreachable(), rotation.index) for _ in range(7)] == [
        (0.0, 1),
        (0.0, 2),
        (1.0, 0),  # all three failed: the next round waits
        (0.0, 1),
        (0.0, 2),
        (2.0, 0),  # longer after each failed round
        (0.0, 1),
    ]


def test_an_answer_keeps_its_coordinator_and_starts_the_backoff_afresh() -> None:
    rotation = CoordinatorRotation(2, counting_delays)
    rotation.unreachable()
    assert rotation.unreachable() == 1.0
    rotation.unreachable()
    rotation.answered()
    assert rotation.index == 1
    assert [rotation.unreachable(), rotation.unreachable()] == [0.0, 1.0]


def test_a_coordinator_that_answers_not_yet_is_asked_again_after_a_growing_wait() -> None:
    rotation = CoordinatorRotation(2, counting_delays)
    assert rotation.unreachable() == 0.0
    assert [rotation.not_yet(), rotation.not_yet()] == [1.0, 2.0]
    assert rotation.index == 1
    assert rotation.unreachable() == 0.0  # a round counts failures since the last answer, not_yet included


def test_one_coordinator_backs_off_after_each_failure() -> None:
    rotation = CoordinatorRotation(1, counting_delays)
    assert [rotation.unreachable() for _ in range(3)] == [1.0, 2.0, 3.0]
    assert rotation.index == 0


def test_the_coordinator_addresses_a_worker_takes() -> None:
    assert coordinator_list("a:50051, b:50052,") == ("a:50051", "b:50052")
    assert coordinator_list("dns:///coordinators.lan:50051") == ("dns:///coordinators.lan:50051",)
    assert dialed_host_port("dns:///coordinators.lan:50051") == "coordinators.lan:50051"
    assert dialed_host_port("dns://10.0.0.53/coordinators.lan:50051") == "coordinators.lan:50051"
    assert dialed_host_port("dns:coordinators.lan:50051") == "coordinators.lan:50051"
    assert dialed_host_port("10.0.0.1:50051") == "10.0.0.1:50051"


@pytest.mark.parametrize("given", ["a:50051,b", "a:50051,b:99999", " , "])
def test_a_malformed_coordinator_address_is_refused_naming_it(given: str) -> None:
    with pytest.raises(ValueError, match="coordinator address"):
        WorkerConfig(coordinator=given, model_path=Path("m.gguf"))
