"""KeyRecord settings: each bad field is refused naming it; a record survives its trip through a Redis hash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from swarm.coordinator.tenancy.key_record import KeyRecord, KeySettings, new_record, parse_expiry, parse_priority
from swarm.shared.errors import ErrorCode, SwarmError

NOW_MS = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000)


def test_a_full_record_round_trips_through_its_hash() -> None:
    settings = KeySettings(
        name="team-a",
        models=("tiny", "gemma", "tiny"),
        expires="2027-01-31",
        tokens_per_minute=600,
        requests_per_minute=30,
        max_streams=4,
        priority="batch",
        weight=2.5,
        admin=True,
    )
    record = new_record(settings, NOW_MS)
    assert record.models == ("tiny", "gemma")  # repeats dropped, order kept
    assert record.expires_ms == int(datetime(2027, 1, 31, tzinfo=UTC).timestamp() * 1000)
    assert record.priority == 1 and record.limited and record.admin
    assert KeyRecord.from_hash(record.to_hash()) == record
    assert record.allows_model("gemma") and not record.allows_model("other")
    assert KeyRecord(name="open").allows_model("anything")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (KeySettings(name=""), "name"),
        (KeySettings(name="has space"), "name"),
        (KeySettings(name="x" * 65), "name"),
        (KeySettings(name="k", models=("a,b",)), "models"),
        (KeySettings(name="k", expires="31/01/2027"), "expires"),
        (KeySettings(name="k", expires="2020-01-01"), "expires"),
        (KeySettings(name="k", tokens_per_minute=-1), "tokens_per_minute"),
        (KeySettings(name="k", requests_per_minute=10**10), "requests_per_minute"),
        (KeySettings(name="k", max_streams=-5), "max_streams"),
        (KeySettings(name="k", priority="urgent"), "priority"),
        (KeySettings(name="k", priority="100"), "priority"),
        (KeySettings(name="k", weight=0.0), "weight"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_field(settings: KeySettings, field: str) -> None:
    with pytest.raises(SwarmError) as refused:
        new_record(settings, NOW_MS)
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT
    assert refused.value.message.startswith(f"{field}: ")


def test_priorities_and_expiry_forms() -> None:
    assert [parse_priority(p) for p in ("interactive", "BATCH", "7", "")] == [0, 1, 7, 0]
    assert parse_expiry("", NOW_MS) == 0
    noon = int(datetime(2026, 7, 1, 12, tzinfo=UTC).timestamp() * 1000)
    assert parse_expiry("2026-07-01T12:00:00Z", NOW_MS) == noon
    assert parse_expiry("2026-07-01T14:00:00+02:00", NOW_MS) == noon
    assert parse_expiry("2026-07-01T12:00", NOW_MS) == noon  # no zone: UTC
    assert KeyRecord(name="k", expires_ms=noon).expired(noon)
    assert not KeyRecord(name="k", expires_ms=noon).expired(noon - 1)
    assert not KeyRecord(name="k").expired(noon)
