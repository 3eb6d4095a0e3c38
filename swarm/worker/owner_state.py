"""OwnerState: whether the owner lets this worker take work now (hours, pause, load), and what it used today."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from swarm.worker.owner_hours import ALWAYS, OwnerHours

PAUSED = "paused by its owner"
OUTSIDE_HOURS = "outside its hours"


@dataclass(frozen=True)
class Usage:
    """Totals since the worker started: generated tokens and the CPU seconds its process used."""

    tokens: int
    cpu_seconds: float


@dataclass(frozen=True)
class UsageToday:
    tokens: int
    cpu_hours: float
    energy_wh: float  # 0 when the owner gave no --watts


class OwnerState:
    """The owner's say over one worker; clock and usage are injected so tests choose the hour."""

    def __init__(
        self,
        hours: OwnerHours = ALWAYS,
        *,
        clock: Callable[[], datetime] = datetime.now,
        usage: Callable[[], Usage] = lambda: Usage(0, 0.0),
        watts: float = 0.0,
        threads: int = 1,
        load: Callable[[], str] = lambda: "",
    ) -> None:
        self.hours = hours
        self.paused = False
        self._clock = clock
        self._usage = usage
        self._watts = watts
        self._threads = threads
        self._load = load  # why the owner's load keeps it from work (`--when idle`); "" when it does not
        self._day: date | None = None
        self._at_day_start = Usage(0, 0.0)

    def away(self) -> str:
        """Why this worker takes no new work now ("" when it takes work)."""
        if self.paused:
            return PAUSED
        if not self.hours.allows(self._clock()):
            return OUTSIDE_HOURS
        return self._load()

    def mark_day(self) -> Usage:
        """The usage now; the first call on a new day starts that day's count (the worker calls it every heartbeat)."""
        now, day = self._usage(), self._clock().date()
        if day != self._day:
            self._day, self._at_day_start = day, (self._at_day_start if self._day is None else now)
        return now

    def today(self) -> UsageToday:
        """Tokens, CPU hours and (with --watts) energy since the first mark after local midnight (or since start).

        Energy is an estimate: --watts is what the PC draws beyond idle with all the worker's threads
        busy, so each CPU hour costs watts / threads.
        """
        now = self.mark_day()
        cpu_hours = (now.cpu_seconds - self._at_day_start.cpu_seconds) / 3600
        return UsageToday(
            tokens=now.tokens - self._at_day_start.tokens,
            cpu_hours=cpu_hours,
            energy_wh=self._watts * cpu_hours / self._threads,
        )
