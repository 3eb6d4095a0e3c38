"""The owner's `--when` rules and what they allow, with the time injected (pure logic: no worker runs)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from swarm.worker.owner_hours import ALWAYS, WhenMode, parse_owner_hours
from swarm.worker.owner_state import OUTSIDE_HOURS, PAUSED, OwnerState, Usage

MONDAY = datetime(2026, 11, 30)


def at(day_of_week: int, hour: int, minute: int = 0) -> datetime:
    """A moment in the week of Monday 2026-11-30 (0 = that Monday, 6 = Sunday 2026-12-06)."""
    return MONDAY + timedelta(days=day_of_week, hours=hour, minutes=minute)


def test_the_issue_s_schedule_covers_weekday_evenings_into_the_night_and_whole_weekends() -> None:
    hours = parse_owner_hours("mon-fri 19:00-07:00, sat-sun")
    assert hours.mode is WhenMode.SCHEDULE
    assert hours.allows(at(0, 19))
    assert hours.allows(at(1, 6, 59))  # Monday's range, past midnight
    assert not hours.allows(at(1, 7))
    assert not hours.allows(at(2, 12))
    assert not hours.allows(at(0, 3))  # Sunday night's range is not Sunday's: Sunday has the whole day only
    assert hours.allows(at(5, 12)) and hours.allows(at(6, 23, 59))
    assert hours.allows(at(5, 3))  # Friday 19:00-07:00 runs into Saturday
    assert not hours.allows(at(4, 18, 59))


def test_a_time_range_alone_is_every_day_and_a_day_range_may_wrap_the_week() -> None:
    nights = parse_owner_hours("22:00-06:00")
    assert all(nights.allows(at(day, 23)) and not nights.allows(at(day, 12)) for day in range(7))
    weekend = parse_owner_hours("Fri-Mon")
    assert [weekend.allows(at(day, 12)) for day in range(7)] == [True, False, False, False, True, True, True]
    assert parse_owner_hours("tuesday 9-17").allows(at(1, 16, 59))
    assert not parse_owner_hours("mon 00:00-24:00").allows(at(1, 0))
    assert parse_owner_hours("mon 00:00-24:00").allows(at(0, 23, 59))


@pytest.mark.parametrize("text", ["always", "idle", " ALWAYS "])
def test_always_and_idle_allow_every_hour(text: str) -> None:
    hours = parse_owner_hours(text)
    assert hours.mode in (WhenMode.ALWAYS, WhenMode.IDLE)
    assert all(hours.allows(at(day, hour)) for day in range(7) for hour in range(24))
    assert parse_owner_hours("always") == ALWAYS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mon-fri 25:00-07:00", '--when: "mon-fri 25:00-07:00": hour 25'),
        ("mon-fri 19:00-07:00, sat-sun, mnd", "--when: \"mnd\": day 'mnd'"),
        ("mon 19:61-20:00", '--when: "mon 19:61-20:00": minute 61'),
        ("mon 19:00", "--when: \"mon 19:00\": time range '19:00'"),
        ("mon 7:00-7:00", "is empty"),
        ("mon 24:00-02:00", "cannot start at 24:00"),
        ("mon 1 2 3", "one day range and one time range at most"),
        ("mon,,tue", "give always, idle or rules"),
        ("", "give always, idle or rules"),
        ("mon noon-3", "time 'noon'"),
    ],
)
def test_a_bad_rule_is_named_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^--when: ") as error:
        parse_owner_hours(text)
    assert message in str(error.value)


def test_the_owner_state_says_why_no_work_is_taken_and_a_pause_wins_over_the_hours() -> None:
    now = [at(2, 12)]
    owner = OwnerState(parse_owner_hours("sat-sun"), clock=lambda: now[0])
    assert owner.away() == OUTSIDE_HOURS
    now[0] = at(5, 0)  # the hours begin: it takes work again, nobody waited for it
    assert owner.away() == ""
    owner.paused = True
    assert owner.away() == PAUSED
    owner.paused = False
    assert owner.away() == ""


def test_usage_today_starts_again_at_midnight_and_prices_cpu_hours_with_the_owner_s_watts() -> None:
    now, used = [at(0, 22)], [Usage(100, 3600.0)]
    owner = OwnerState(clock=lambda: now[0], usage=lambda: used[0], watts=40.0, threads=2)
    first = owner.today()
    assert (first.tokens, first.cpu_hours, first.energy_wh) == (100, 1.0, 20.0)
    now[0], used[0] = at(1, 0, 30), Usage(150, 5400.0)
    assert owner.today().tokens == 0  # a new day counts from its first look
    used[0] = Usage(170, 9000.0)
    later = owner.today()
    assert (later.tokens, later.cpu_hours) == (20, 1.0)


def test_the_owner_s_load_keeps_a_worker_from_work_after_a_pause_and_its_hours() -> None:
    load = "away: its owner is busy"
    assert OwnerState(load=lambda: load).away() == load
    owner = OwnerState(parse_owner_hours("mon 09:00-10:00"), clock=lambda: at(2, 12), load=lambda: load)
    assert owner.away() == OUTSIDE_HOURS
    owner.paused = True
    assert owner.away() == PAUSED
