"""Several coordinator addresses and the order a call tries them in: the next on a retryable failure, then a backoff."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import grpc

from swarm.shared.addresses import default_coordinator
from swarm.shared.backoff import backoff_delays
from swarm.shared.tls import ChannelOptions

# Codes a retry with the same request id may cure: a coordinator died, restarted or is overloaded.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})

Answer = TypeVar("Answer")


class SwarmCallError(RuntimeError):
    """A call the swarm refused or could not finish; `code` is the gRPC status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def coordinator_addresses(given: str | Sequence[str] | None) -> tuple[str, ...]:
    """The addresses a client tries, in order: `a:50051,b:50051`, a list of them, or $SWARM_COORDINATOR.

    Raises ValueError when nothing is left after dropping blanks.
    """
    if not given:
        given = default_coordinator()
    parts = [given] if isinstance(given, str) else list(given)
    addresses = tuple(a.strip() for part in parts for a in part.split(",") if a.strip())
    if not addresses:
        raise ValueError("no coordinator address given")
    return addresses


def channel_options(address: str) -> ChannelOptions:
    """A `dns:///name:port` target balances over every address the name resolves to, skipping dead ones."""
    return [("grpc.lb_policy_name", "round_robin")] if address.startswith("dns:") else []


class CallAttempts:
    """One call's path through the addresses, starting at the one that last answered.

    A retryable failure moves to the next address at once; after a whole round of them
    has failed the call waits a capped, jittered backoff, and gives up after `retries`
    such waits. A call that made progress (a stream that delivered a piece) starts afresh.
    """

    def __init__(self, count: int, start: int, retries: int, delays: Iterator[float] | None = None) -> None:
        self.index = start % count
        self._count = count
        self._retries = retries
        self._delays = delays if delays is not None else backoff_delays()
        self._failed_in_round = 0
        self._rounds_failed = 0

    def progressed(self) -> None:
        """Called for every message received, so it only resets counters; the next wait starts short again."""
        if self._rounds_failed:
            self._delays = backoff_delays()
        self._failed_in_round = 0
        self._rounds_failed = 0

    def after_failure(self, code: grpc.StatusCode, details: str) -> float:
        """Seconds to wait before trying `index` (now the next address); raises SwarmCallError when it may not."""
        if code not in RETRYABLE:
            raise SwarmCallError(code, details)
        self.index = (self.index + 1) % self._count
        self._failed_in_round += 1
        if self._failed_in_round < self._count:
            return 0.0
        self._failed_in_round = 0
        self._rounds_failed += 1
        if self._rounds_failed > self._retries:
            raise SwarmCallError(code, details)
        return next(self._delays)


def first_answer(count: int, start: int, call: Callable[[int], Answer]) -> tuple[int, Answer]:
    """A blocking unary call tried at each of `count` addresses in turn from `start` (one round, no waits).

    Returns the index that answered and its answer; raises SwarmCallError when none could.
    """
    attempts = CallAttempts(count, start, retries=0)
    while True:
        index = attempts.index
        try:
            return index, call(index)
        except grpc.RpcError as exc:
            attempts.after_failure(exc.code(), exc.details() or "")
