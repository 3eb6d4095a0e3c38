"""Pairing drafts with workers is pure: drafts of the model and vocabulary, spread by worker id; a mismatch refused."""

from __future__ import annotations

from swarm.coordinator.draft_pairing import draft_refusal, paired_draft
from swarm.shared.types import WorkerId, WorkerInfo, WorkerState, WorkerView


def worker(
    wid: str, model: str = "big", vocab: str = "v1", draft_for: str = "", state: WorkerState = WorkerState.UP
) -> WorkerView:
    info = WorkerInfo(WorkerId(wid), f"{wid}:1", model, 512, 4, 2, draft_for=draft_for, vocab_fingerprint=vocab)
    return WorkerView(info=info, state=state)


def test_a_worker_is_paired_with_an_up_draft_of_its_model_and_vocabulary() -> None:
    target = worker("t")
    workers = [
        target,
        worker("down", "small", draft_for="big", state=WorkerState.DOWN),
        worker("draining", "small", draft_for="big", state=WorkerState.DRAINING),
        worker("other-model", "small", draft_for="huge"),
        worker("other-vocab", "small", vocab="v2", draft_for="big"),
        worker("plain", "small"),  # a worker of another model, not a draft
    ]
    assert paired_draft(workers, target.info) == ""
    workers.append(worker("good", "small", draft_for="big"))
    assert paired_draft(workers, target.info) == "good:1"


def test_workers_spread_over_drafts_and_keep_theirs() -> None:
    drafts = [worker(f"d{i}", "small", draft_for="big") for i in range(3)]
    targets = [worker(f"t{i}") for i in range(30)]
    chosen = [paired_draft([*drafts, *targets], t.info) for t in targets]
    assert len(set(chosen)) == 3
    assert chosen == [paired_draft([*reversed(drafts), *targets], t.info) for t in targets]


def test_a_draft_is_never_paired_with_a_draft_or_a_later_stage() -> None:
    draft = worker("d", "small", draft_for="big")
    assert paired_draft([draft], worker("other-draft", "big", draft_for="big").info) == ""
    stage = WorkerInfo(WorkerId("s"), "s:1", "big", 512, 4, 2, stage_index=1, stage_count=2, vocab_fingerprint="v1")
    assert paired_draft([draft], stage) == ""


def test_a_draft_of_another_vocabulary_than_the_up_workers_is_refused() -> None:
    draft = worker("d", "small", vocab="v2", draft_for="big").info
    assert draft_refusal([worker("t", vocab="v1")], draft).startswith("the draft model 'small'")
    assert "'big'" in draft_refusal([worker("t", vocab="v1")], draft)
    assert draft_refusal([worker("t", vocab="v2")], draft) == ""
    assert draft_refusal([worker("t", vocab="v1", state=WorkerState.DOWN)], draft) == ""
    assert draft_refusal([], draft) == ""  # no worker of its model yet: pairing checks again later
