"""While a tenant seen lately runs nothing, steps carry at most half the slots' decode rows (pure)."""

from __future__ import annotations

from swarm.engine.recent_tenants import RecentTenants, decode_row_cap


def test_a_tenant_seen_lately_that_runs_nothing_may_return() -> None:
    recent = RecentTenants(recent_s=5.0)
    assert not recent.one_may_return(frozenset(), now=0.0)
    recent.saw("flood", now=0.0)
    recent.saw("quiet", now=1.0)
    assert not recent.one_may_return(frozenset({"flood", "quiet"}), now=2.0)  # both run
    assert recent.one_may_return(frozenset({"flood"}), now=2.0)  # quiet between requests
    assert recent.one_may_return(frozenset({"flood"}), now=5.9)
    assert not recent.one_may_return(frozenset({"flood"}), now=6.0)  # quiet gone 5 s: forgotten
    recent.saw("quiet", now=7.0)
    assert recent.one_may_return(frozenset({"flood"}), now=7.5)


def test_the_cap_is_half_the_slots_and_never_below_one_row() -> None:
    assert decode_row_cap(8, one_may_return=True) == 4
    assert decode_row_cap(3, one_may_return=True) == 1
    assert decode_row_cap(1, one_may_return=True) == 1
    assert decode_row_cap(8, one_may_return=False) == 0  # no cap
