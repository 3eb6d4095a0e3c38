"""Which coordinator a call tries next, and when it waits, gives up or is done: pure logic, no network."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from swarm.client.failover import CallAttempts, SwarmCallError, channel_options, coordinator_addresses
from swarm.client.types import ResumableRequest
from swarm.shared.types import Finished, FinishReason, TextPiece
from swarm.wire import swarm_pb2 as pb
from swarm.wire.convert import event_to_wire

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def counting_delays() -> Iterator[float]:
    n = 1
    while True:
        yield float(n)
        n += 1


def test_addresses_come_as_one_comma_separated_string_a_list_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert coordinator_addresses("a:1") == ("a:1",)
    assert coordinator_addresses(" a:1, b:2 ,,[::1]:3") == ("a:1", "b:2", "[::1]:3")
    assert coordinator_addresses(["a:1", "b:2,c:3"]) == ("a:1", "b:2", "c:3")
    assert coordinator_addresses("dns:///coord.lan:50051") == ("dns:///coord.lan:50051",)
    monkeypatch.setenv("SWARM_COORDINATOR", "x:1,y:2")
    assert coordinator_addresses(None) == ("x:1", "y:2")
    assert coordinator_addresses("") == ("x:1", "y:2")
    monkeypatch.delenv("SWARM_COORDINATOR")
    assert coordinator_addresses(None) == ("127.0.0.1:50051",)
    with pytest.raises(ValueError, match="no coordinator address"):
        coordinator_addresses(" , ")


def test_a_dns_target_balances_over_every_address_it_resolves_to() -> None:
    assert ("grpc.lb_policy_name", "round_robin") in channel_options("dns:///coord.lan:50051")
    assert not channel_options("10.0.0.1:50051")


def test_a_failure_moves_to_the_next_address_at_once_and_waits_only_after_a_whole_round() -> None:
    attempts = CallAttempts(3, start=1, retries=2, delays=counting_delays())
    tried = [attempts.index]
    waits = []
    for _ in range(6):
        waits.append(attempts.after_failure(UNAVAILABLE, "down"))
        tried.append(attempts.index)
    assert tried == [1, 2, 0, 1, 2, 0, 1]
    assert waits == [0.0, 0.0, 1.0, 0.0, 0.0, 2.0]
    with pytest.raises(SwarmCallError) as gave_up:
        for _ in range(3):
            attempts.after_failure(UNAVAILABLE, "still down")
    assert gave_up.value.code == UNAVAILABLE
    assert gave_up.value.details == "still down"


def test_no_retries_still_tries_every_address_once() -> None:
    attempts = CallAttempts(3, start=0, retries=0)
    assert attempts.after_failure(UNAVAILABLE, "a down") == 0.0
    assert attempts.after_failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "b full") == 0.0
    with pytest.raises(SwarmCallError, match="c down"):
        attempts.after_failure(UNAVAILABLE, "c down")


def test_a_refusal_is_never_retried() -> None:
    attempts = CallAttempts(3, start=0, retries=5)
    for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE):
        with pytest.raises(SwarmCallError) as refused:
            attempts.after_failure(code, "no")
        assert refused.value.code == code
    assert attempts.index == 0


def test_progress_starts_the_budget_and_the_backoff_afresh() -> None:
    attempts = CallAttempts(1, start=0, retries=1, delays=counting_delays())
    assert attempts.after_failure(UNAVAILABLE, "restarting") == 1.0
    attempts.progressed()  # the resumed stream delivered a piece
    wait = attempts.after_failure(UNAVAILABLE, "restarting again")
    assert 0.0 <= wait <= 0.2  # the first step of a fresh backoff, not the next of the old one
    with pytest.raises(SwarmCallError):
        attempts.after_failure(UNAVAILABLE, "gone")


def test_a_call_knows_when_the_whole_answer_arrived_so_a_lost_close_ends_it_instead_of_a_retry() -> None:
    call = ResumableRequest(pb.GenerateRequest(request_id="r", prompt="Hi"), CallAttempts(1, 0, retries=0))
    call.received(event_to_wire("r", TextPiece("a", (1, 2))))
    assert (call.finished, call.request.resume_after_tokens) == (False, 2)
    call.received(event_to_wire("r", Finished(FinishReason.LENGTH, prompt_tokens=1, completion_tokens=2)))
    assert call.finished
