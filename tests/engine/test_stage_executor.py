"""StageExecutor chains: sessions batched through 2 and 3 stages generate what the whole model does, and verify
proposed tokens as it does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.stage_executor import StageExecutor
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.shared.stage_messages import StageResult, StageWork
from swarm.shared.types import SamplingParams
from tests.greedy_check import GreedyReference

PROMPTS = ["Hello world", "The quick brown fox jumps over", "Once upon a time there"]
GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def four_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("stage-exec") / "four.gguf", seed=0, n_layer=4)


def run_pipeline(stages: list[StageExecutor], work: list[StageWork]) -> list[StageResult]:
    for stage in stages[:-1]:
        results = stage.step(work)
        work = [replace(w, hidden=r.hidden, tokens=()) for w, r in zip(work, results, strict=True)]
    return stages[-1].step(work)


@pytest.mark.parametrize("count", [2, 3])
def test_sessions_batched_through_stages_match_the_whole_model(four_layers: Path, tmp_path: Path, count: int) -> None:
    manifest = split_model(four_layers, count, tmp_path)
    models = [LlamaModel(tmp_path / s.file) for s in manifest.stages]
    stages = [
        StageExecutor(m, first=i == 0, last=i == count - 1, slots=4, context_per_slot=128, threads=1)
        for i, m in enumerate(models)
    ]
    prompts = {session: models[0].tokenize(p) for session, p in enumerate(PROMPTS)}
    for session in prompts:
        for stage in stages:
            stage.open(session, GREEDY)
    # Step 1 prefills every prompt together; then one token per session per step.
    work = [StageWork(s, 0, tokens=tuple(t), sample=True) for s, t in prompts.items()]
    generated: dict[int, list[int]] = {s: [] for s in prompts}
    positions = {s: len(t) for s, t in prompts.items()}
    for _ in range(12):
        for result in run_pipeline(stages, work):
            assert result.token is not None
            generated[result.session].append(result.token)
        work = [StageWork(s, positions[s], tokens=(generated[s][-1],), sample=True) for s in prompts]
        positions = {s: p + 1 for s, p in positions.items()}
    reference = GreedyReference(four_layers, n_ctx=256)
    for session, prompt in enumerate(PROMPTS):
        assert len(generated[session]) == 12
        reference.check(prompt, generated[session])  # batched sessions: greedy up to rounding ties
    reference.close()
    for stage in stages:
        stage.close_all()


def test_a_stage_refuses_sessions_outside_its_slots(four_layers: Path, tmp_path: Path) -> None:
    manifest = split_model(four_layers, 2, tmp_path)
    stage = StageExecutor(
        LlamaModel(tmp_path / manifest.stages[1].file), first=False, last=True, slots=2, context_per_slot=64, threads=1
    )
    with pytest.raises(ValueError, match="outside"):
        stage.open(5, GREEDY)
    with pytest.raises(ValueError, match="hidden states"):
        stage.open(0, GREEDY)
        stage.step([StageWork(0, 0, tokens=(1, 2))])
    stage.close_all()


@pytest.mark.parametrize("count", [2, 3])
def test_the_last_stage_verifies_a_proposal_and_every_stage_drops_its_rejected_rows(
    tiny_model: Path, tmp_path: Path, count: int
) -> None:
    model = tiny_model if count == 2 else write_tiny_llama(tmp_path / "three.gguf", seed=0, n_layer=3)
    manifest = split_model(model, count, tmp_path)
    stages = [
        StageExecutor(
            LlamaModel(tmp_path / s.file), first=i == 0, last=i == count - 1, slots=2, context_per_slot=64, threads=1
        )
        for i, s in enumerate(manifest.stages)
    ]
    prompt = tuple(stages[0].model.tokenize(PROMPTS[1]))
    for stage in stages:
        stage.open(0, GREEDY)
        stage.open(1, GREEDY)
    # Session 0 decodes plainly: the greedy continuation g.
    (first,) = run_pipeline(stages, [StageWork(0, 0, tokens=prompt, sample=True)])
    assert first.token is not None
    greedy = [first.token]
    for i in range(5):
        (result,) = run_pipeline(stages, [StageWork(0, len(prompt) + i, tokens=(greedy[-1],), sample=True)])
        assert result.token is not None
        greedy.append(result.token)
    # Session 1 sends g0 and a proposal right for two tokens, wrong at the third: one trip decides g1 g2 g3.
    run_pipeline(stages, [StageWork(1, 0, tokens=prompt, sample=True)])
    wrong = next(t for t in range(100, 200) if t != greedy[3])
    proposal = (greedy[1], greedy[2], wrong, greedy[4])
    (verified,) = run_pipeline(
        stages, [StageWork(1, len(prompt), tokens=(greedy[0], *proposal), sample=True, proposal=proposal)]
    )
    assert [s.token for s in verified.decided] == greedy[1:4]
    assert stages[-1].cached_positions(1) == len(prompt) + 3  # the last stage dropped the rejected rows at once...
    assert all(stage.cached_positions(1) == len(prompt) + 5 for stage in stages[:-1])  # ...the others hold them
    # The session's next rows drop them on every stage first, and decode on as without the proposal.
    (after,) = run_pipeline(stages, [StageWork(1, len(prompt) + 3, tokens=(greedy[3],), sample=True, trim=True)])
    assert after.token == greedy[4]
    assert all(stage.cached_positions(1) == len(prompt) + 4 for stage in stages)
    for stage in stages:
        stage.close_all()
