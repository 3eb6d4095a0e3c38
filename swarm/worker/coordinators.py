"""The coordinators a worker may talk to, and the order it tries them: the next at once, a backoff after a round."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc

from swarm.client.failover import coordinator_addresses
from swarm.shared.addresses import split_host_port
from swarm.shared.backoff import backoff_delays

# A coordinator that is down, restarting or hung: another one serves the same registry, so the worker moves on.
UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def dialed_host_port(target: str) -> str:
    """HOST:PORT of a coordinator target: `dns:///NAME:PORT` (or `dns://SERVER/NAME:PORT`) names NAME:PORT."""
    if not target.startswith("dns:"):
        return target
    rest = target.removeprefix("dns:")
    return rest[2:].partition("/")[2] if rest.startswith("//") else rest


def coordinator_list(given: str) -> tuple[str, ...]:
    """The coordinators of `a:50051,b:50051` or `dns:///NAME:PORT`, in order; ValueError names a malformed one."""
    addresses = coordinator_addresses(given)
    for address in addresses:
        try:
            split_host_port(dialed_host_port(address))
        except ValueError as exc:
            raise ValueError(f"coordinator address: {exc}") from None
    return addresses


class CoordinatorRotation:
    """Which of `count` coordinators to call next.

    An unreachable one is left for the next at once; after a whole round of them failed, the caller
    waits a capped, jittered backoff before the next round. It never gives up: a worker waits for its
    swarm to come back. An answer starts the backoff afresh.
    """

    def __init__(self, count: int, delays: Callable[[], Iterator[float]] = backoff_delays) -> None:
        self.index = 0
        self._count = count
        self._new_delays = delays
        self._delays = delays()
        self._failed_in_round = 0

    def unreachable(self) -> float:
        """Moves to the next coordinator; returns the seconds to wait before calling it (0 within a round)."""
        self.index = (self.index + 1) % self._count
        self._failed_in_round += 1
        if self._failed_in_round < self._count:
            return 0.0
        self._failed_in_round = 0
        return next(self._delays)

    def not_yet(self) -> float:
        """The current coordinator answered but cannot take the call yet: seconds to wait before asking it again."""
        self._failed_in_round = 0
        return next(self._delays)

    def answered(self) -> None:
        self._failed_in_round = 0
        self._delays = self._new_delays()
