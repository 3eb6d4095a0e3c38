"""The early-exit draft bench: its acceptance arithmetic, its teacher forcing, and its tables on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.bench.draft_acceptance import Costs, Decoder, acceptance, main
from swarm.gguf_files.synthetic_model import write_tiny_llama

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny4") / "tiny.gguf", seed=0, n_layer=4)


def test_accepted_tokens_are_agreeing_runs_capped_at_k() -> None:
    # Runs of agreement from each position: 2, 1, 0, 1.
    result = acceptance([[True, True, False, True]])
    assert (result.positions, result.agreeing, result.match) == (4, 3, 0.75)
    # k = 1: every position; k = 2: positions 0-2 (whole proposals only); k = 4: position 0; k = 8: none.
    assert result.accepted == {1: 0.75, 2: 1.0, 4: 2.0, 8: 0.0}
    assert acceptance([[True] * 9, [False] * 9]).accepted == {1: 0.5, 2: 1.0, 4: 2.0, 8: 4.0}


def test_projected_speed_ups() -> None:
    costs = Costs(draft_ms=2.0, target_ms=10.0, verify_ms={1: 12.0, 2: 13.0, 4: 15.0, 8: 20.0})
    assert costs.one_pc(1.0, 1) == pytest.approx(2 * 10 / (2 + 12))
    assert costs.own_pc(1.0, 1) == pytest.approx(2 * 10 / 12)
    assert costs.own_pc(3.0, 8) == pytest.approx(4 * 10 / 20)  # the verify step is the longer
    costs = Costs(draft_ms=5.0, target_ms=10.0, verify_ms={1: 12.0, 2: 13.0, 4: 15.0, 8: 20.0})
    assert costs.own_pc(3.0, 8) == pytest.approx(4 * 10 / 40)  # the draft's 8 steps are


def test_teacher_forced_argmax_of_the_model_itself_is_its_greedy_text(tiny4: Path) -> None:
    decoder = Decoder(tiny4, threads=1)
    try:
        prompt = decoder.model.tokenize("The quick brown fox")
        continuation = decoder.greedy(prompt, 20)
        assert len(continuation) == 20 and len(set(continuation)) > 3
        assert decoder.predictions(prompt, continuation) == continuation
    finally:
        decoder.close()


def test_the_bench_prints_its_tables(tiny4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", str(tiny4), "--layers", "1,3", "--tokens", "10", "--runs", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("| --- |") for line in out.splitlines()) == 3
    for n in (1, 3):
        assert f"| {n} | reemit |" in out and f"| {n} | ordinary |" in out


def test_the_bench_names_a_bad_layer_count(tiny4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--model", str(tiny4), "--layers", "4", "--tokens", "10", "--runs", "1"])
    assert "--layers: a draft of this 4-layer model keeps 1 to 3 layers, not 4" in capsys.readouterr().err
