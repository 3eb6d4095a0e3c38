"""Which stage a stage stream's sender expects: a plan change must never join the stages of two layouts.

When the coordinator re-plans a model, its workers reload their new stage files one by one. A head that
has loaded its new file may open a stream to a next stage still serving the old layout's layers; rows
would then skip or repeat layers and decode wrong tokens. So each stream names the stage it expects
(position, count and first layer), and a stage that is not that one refuses it with FAILED_PRECONDITION:
the request's step fails and it resumes once the layouts agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarm.engine.llama_adapter.model import StagePosition

HEADER = "x-swarm-next-stage"


def next_stage_metadata(stage: StagePosition | None) -> tuple[tuple[str, str], ...]:
    """The header naming the stage after `stage` (none for a model that is not split)."""
    if stage is None:
        return ()
    return ((HEADER, _stage_name(stage.index + 1, stage.count, stage.layer_end)),)


def stage_refusal(metadata: Iterable[tuple[str, str | bytes]] | None, stage: StagePosition | None) -> str | None:
    """Why a stream whose sender expects another stage than `stage` is refused; None when it may go on.

    A sender that names no stage (an older worker) is taken at its word, as before this check.
    """
    expected = next((str(value) for key, value in metadata or () if key == HEADER), None)
    if expected is None or stage is None:
        return None
    here = _stage_name(stage.index, stage.count, stage.layer_start)
    if expected == here:
        return None
    return (
        f"the sender expects stage {expected} (index/count@first layer), this is stage {here}: the model's plan "
        "changed and this worker has not loaded its new stage yet; the request resumes once it has"
    )


def _stage_name(index: int, count: int, first_layer: int) -> str:
    """A stage as the header names it: index/count@first layer."""
    return f"{index}/{count}@{first_layer}"
