"""SessionTable: two streams numbering their sessions alike never share a local sequence id."""

from __future__ import annotations

import pytest

from swarm.engine.session_table import NoFreeSession, SessionTable
from swarm.engine.stage_executor import CacheLost
from swarm.shared.stage_messages import PipelineStep, SessionOpen, StageWork
from swarm.shared.types import SamplingParams

GREEDY = SamplingParams(temperature=0.0)


def opening(*sessions: int) -> PipelineStep:
    return PipelineStep(
        tuple(SessionOpen(s, GREEDY, ()) for s in sessions), (), tuple(StageWork(s, 0, (1,)) for s in sessions)
    )


def test_two_streams_with_the_same_session_ids_get_different_local_ids_and_map_back() -> None:
    table = SessionTable(4)
    a = table.translate("a", opening(0, 1))
    b = table.translate("b", opening(0, 1))
    local_a = [w.session for w in a.work]
    local_b = [w.session for w in b.work]
    assert len(set(local_a + local_b)) == 4
    assert [table.upstream(s) for s in local_a] == [0, 1] == [table.upstream(s) for s in local_b]


def test_a_released_id_is_remembered_for_a_prefix_until_another_session_needs_it() -> None:
    table = SessionTable(2)
    first = table.translate("a", opening(0, 1))
    with pytest.raises(NoFreeSession):
        table.translate("b", opening(0))
    table.translate("a", PipelineStep((), (0,), ()))
    again = table.translate("a", PipelineStep((SessionOpen(0, GREEDY, (), keep=5),), (), ()))
    assert again.opens[0].session == first.work[0].session  # the same cells: the prefix is still there
    table.translate("a", PipelineStep((), (0,), ()))
    taken = table.translate("b", opening(0))  # b needs an id: a's idle session 0 gives its own up
    assert taken.opens[0].session == first.work[0].session
    with pytest.raises(CacheLost):
        table.translate("a", PipelineStep((SessionOpen(0, GREEDY, (), keep=5),), (), ()))
    assert sorted(table.drop("a")) == [first.work[1].session]
    assert [table.upstream(w.session) for w in table.translate("b", opening(0)).work] == [0]  # room again


def test_rows_of_a_session_never_opened_are_refused() -> None:
    with pytest.raises(ValueError, match="never opened"):
        SessionTable(2).translate("a", PipelineStep((), (), (StageWork(3, 0, (1,)),)))
