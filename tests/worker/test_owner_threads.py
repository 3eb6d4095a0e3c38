"""The fewer-threads step as pure rules: the free cores' count, down at once, up only after a steady spell."""

from __future__ import annotations

from swarm.worker.owner_threads import ThreadStep, next_threads, threads_free


def test_threads_follow_the_cores_others_leave_free_between_one_and_the_most() -> None:
    assert threads_free(8, cores=8, others_share=0.0) == 8
    assert threads_free(8, cores=8, others_share=0.25) == 6  # a build on two of its cores
    assert threads_free(8, cores=8, others_share=0.05) == 8  # under half a core: not the owner's yet
    assert threads_free(4, cores=8, others_share=0.25) == 4  # it ran on fewer than the free cores anyway
    assert threads_free(2, cores=2, others_share=1.0) == 1


def test_fewer_at_once_and_more_only_after_the_room_lasted() -> None:
    step = ThreadStep(8)
    step = next_threads(step, 6, now=0.0, more_after_s=5.0)
    assert step == ThreadStep(6)
    step = next_threads(step, 8, now=1.0, more_after_s=5.0)
    assert step == ThreadStep(6, room_since=1.0)
    step = next_threads(step, 7, now=4.0, more_after_s=5.0)  # still room: the wait goes on
    assert step == ThreadStep(6, room_since=1.0)
    step = next_threads(step, 6, now=5.0, more_after_s=5.0)  # the owner back: the wait starts anew
    assert step == ThreadStep(6)
    step = next_threads(step, 8, now=6.0, more_after_s=5.0)
    assert next_threads(step, 8, now=11.0, more_after_s=5.0) == ThreadStep(8)
