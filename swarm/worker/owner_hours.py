"""The owner's hours: `swarm join --when` text parsed into a frozen schedule that says when the worker may take work.

`always`, `idle` (every hour, backing off while the owner's load says so: owner_watch), or rules
separated by commas, each `DAYS`, `HH:MM-HH:MM` or `DAYS HH:MM-HH:MM`: `mon-fri 19:00-07:00, sat-sun`.
A range that crosses midnight belongs to the day it starts on: `fri 19:00-07:00` covers Saturday 03:00.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LONG_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WHOLE_DAY = (0, 24 * 60)
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?$")


class WhenMode(StrEnum):
    ALWAYS = "always"
    IDLE = "idle"  # every hour, but backing off while the owner works (OwnerWatch)
    SCHEDULE = "schedule"


@dataclass(frozen=True)
class HoursRule:
    """Days of the week (0 = Monday) and minutes of the day [start, end); end <= start crosses midnight."""

    days: frozenset[int]
    start_minute: int
    end_minute: int

    def allows(self, moment: datetime) -> bool:
        day, minute = moment.weekday(), moment.hour * 60 + moment.minute
        if self.start_minute < self.end_minute:
            return day in self.days and self.start_minute <= minute < self.end_minute
        started_today = day in self.days and minute >= self.start_minute
        started_yesterday = (day - 1) % 7 in self.days and minute < self.end_minute
        return started_today or started_yesterday


@dataclass(frozen=True)
class OwnerHours:
    """When a worker may take work; `text` is what the owner wrote."""

    mode: WhenMode = WhenMode.ALWAYS
    rules: tuple[HoursRule, ...] = ()
    text: str = "always"

    def allows(self, moment: datetime) -> bool:
        if self.mode is not WhenMode.SCHEDULE:
            return True
        return any(rule.allows(moment) for rule in self.rules)


ALWAYS = OwnerHours()


def parse_owner_hours(text: str) -> OwnerHours:
    """The schedule `text` describes; ValueError naming the part that is wrong."""
    cleaned = " ".join(text.lower().split())
    if cleaned in (WhenMode.ALWAYS, WhenMode.IDLE):
        return OwnerHours(WhenMode(cleaned), (), cleaned)
    parts = [part.strip() for part in cleaned.split(",")]
    if not cleaned or any(not part for part in parts):
        raise ValueError(f'--when: "{text}": give always, idle or rules like "mon-fri 19:00-07:00, sat-sun"')
    return OwnerHours(WhenMode.SCHEDULE, tuple(_rule(part) for part in parts), cleaned)


def _rule(part: str) -> HoursRule:
    words = part.split(" ")
    if len(words) > 2:
        raise _bad(part, "one day range and one time range at most")
    if len(words) == 2:
        return HoursRule(_days(part, words[0]), *_minutes(part, words[1]))
    if words[0][:1].isdigit():
        return HoursRule(frozenset(range(7)), *_minutes(part, words[0]))
    return HoursRule(_days(part, words[0]), *WHOLE_DAY)


def _days(part: str, word: str) -> frozenset[int]:
    first, _, last = word.partition("-")
    start, end = _day(part, first), _day(part, last or first)
    return frozenset((start + i) % 7 for i in range((end - start) % 7 + 1))


def _day(part: str, name: str) -> int:
    for index, short in enumerate(DAY_NAMES):
        if name == short or name == LONG_DAY_NAMES[index]:
            return index
    raise _bad(part, f"day {name!r} (use {', '.join(DAY_NAMES)})")


def _minutes(part: str, word: str) -> tuple[int, int]:
    first, dash, last = word.partition("-")
    if not dash:
        raise _bad(part, f"time range {word!r} (use HH:MM-HH:MM)")
    start, end = _minute(part, first), _minute(part, last)
    if start == end:
        raise _bad(part, f"time range {word!r} is empty")
    if start == 24 * 60:
        raise _bad(part, "a range cannot start at 24:00")
    return start, end


def _minute(part: str, clock: str) -> int:
    match = _TIME.match(clock)
    if match is None:
        raise _bad(part, f"time {clock!r} (use HH:MM)")
    hour, minute = int(match[1]), int(match[2] or 0)
    if hour > 24 or (hour == 24 and minute):
        raise _bad(part, f"hour {hour}")
    if minute > 59:
        raise _bad(part, f"minute {minute}")
    return hour * 60 + minute


def _bad(part: str, what: str) -> ValueError:
    return ValueError(f'--when: "{part}": {what}')
