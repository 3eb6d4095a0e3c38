"""The adapter's pipeline-stage pieces: hidden-state capture out of a stage, EmbeddingBatch into the next."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from swarm.engine.llama_adapter import EmbeddingBatch, LlamaContext, LlamaModel, StagePosition, TokenBatch
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama

CTX = 64
THREADS = 1
PROMPTS = ("The quick brown fox jumps over", "Hello world")

Floats = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("adapter-stages")


@pytest.fixture(scope="module")
def whole(folder: Path) -> Iterator[LlamaModel]:
    model = LlamaModel(write_tiny_llama(folder / "tiny.gguf", seed=0, n_layer=4))
    yield model
    model.close()


def open_split(whole: LlamaModel, folder: Path, ranges: list[tuple[int, int]]) -> list[LlamaModel]:
    out = folder / "-".join(f"{lo}_{hi}" for lo, hi in ranges)
    manifest = split_model(whole.path, ranges, out)
    return [LlamaModel(out / stage.file) for stage in manifest.stages]


@pytest.fixture(scope="module")
def two(whole: LlamaModel, folder: Path) -> Iterator[list[LlamaModel]]:
    models = open_split(whole, folder, [(0, 2), (2, 4)])
    yield models
    for model in models:
        model.close()


@pytest.fixture(scope="module")
def three(whole: LlamaModel, folder: Path) -> Iterator[list[LlamaModel]]:
    models = open_split(whole, folder, [(0, 1), (1, 2), (2, 4)])
    yield models
    for model in models:
        model.close()


def run_tokens(context: LlamaContext, sequences: dict[int, tuple[Sequence[int], int]]) -> None:
    """One decode of {seq_id: (tokens, first position)}, every token an output."""
    batch = TokenBatch(CTX)
    for seq_id, (tokens, position) in sequences.items():
        for i, token in enumerate(tokens):
            batch.add(token, position + i, seq_id, True)
    context.decode(batch)
    batch.close()


def run_hidden(context: LlamaContext, n_embd: int, sequences: dict[int, tuple[Floats, int]]) -> list[int]:
    """One decode of {seq_id: (hidden rows, first position)}, every row an output; the batch index of each seq."""
    batch = EmbeddingBatch(CTX, n_embd)
    starts = [batch.add_rows(rows, position, seq_id) for seq_id, (rows, position) in sequences.items()]
    context.decode(batch)
    batch.close()
    return starts


def rounding_tolerance(values: Floats) -> float:
    """64 float32 ulps of the largest magnitude in values: far above rounding, far below a misplaced row."""
    return 64 * float(np.finfo(np.float32).eps) * float(np.abs(values).max())


def stage_logits(context: LlamaContext, first: int, n: int) -> Floats:
    return np.stack([context.logits(first + i) for i in range(n)])


def test_models_report_their_shape(whole: LlamaModel, three: list[LlamaModel]) -> None:
    assert (whole.n_embd, whole.n_layer) == (64, 4)
    assert [(m.n_embd, m.n_layer) for m in three] == [(64, 1), (64, 1), (64, 2)]


def test_captured_hidden_state_into_next_stage_predicts_like_the_whole_model(
    whole: LlamaModel, two: list[LlamaModel]
) -> None:
    first, last = two
    tokens = whole.tokenize(PROMPTS[0])
    cut = len(tokens) - 2  # a prompt chunk, then two more tokens at later positions
    whole_ctx = LlamaContext(whole, 1, CTX, CTX, THREADS)
    first_ctx = LlamaContext(first, 1, CTX, CTX, THREADS, capture_hidden=True)
    last_ctx = LlamaContext(last, 1, CTX, CTX, THREADS)
    try:
        expected, got = [], []
        for chunk, position in ((tokens[:cut], 0), (tokens[cut:], cut)):
            run_tokens(whole_ctx, {0: (chunk, position)})
            expected.append(stage_logits(whole_ctx, 0, len(chunk)))
            run_tokens(first_ctx, {0: (chunk, position)})
            hidden = first_ctx.hidden_states()
            assert hidden.shape == (len(chunk), first.n_embd) and hidden.dtype == np.float32
            run_hidden(last_ctx, last.n_embd, {0: (hidden, position)})
            got.append(stage_logits(last_ctx, 0, len(chunk)))
        want, have = np.concatenate(expected), np.concatenate(got)
        assert len(want) == len(tokens) >= 6
        assert np.abs(want - have).max() <= rounding_tolerance(want)  # so greedy picks the same, ties aside
    finally:
        for context in (whole_ctx, first_ctx, last_ctx):
            context.close()


def test_two_sequences_in_one_batch_equal_each_alone(three: list[LlamaModel]) -> None:
    """A middle stage (hidden in, hidden out) and a last stage (hidden in, logits out) batch two seq ids;
    each sequence's rows come back where it put them, equal to decoding it alone."""
    first, middle, last = three
    prompts = [first.tokenize(p) for p in PROMPTS]
    first_ctx = LlamaContext(first, 1, CTX, CTX, THREADS, capture_hidden=True)
    inputs: list[Floats] = []
    for tokens in prompts:  # the middle stage's input for each prompt
        first_ctx.forget(0)
        run_tokens(first_ctx, {0: (tokens, 0)})
        inputs.append(first_ctx.hidden_states())
    first_ctx.close()
    assert len(inputs[0]) != len(inputs[1])  # uneven lengths: llama.cpp's ubatch split must keep batch order

    def alone(model: LlamaModel, capture: bool, seq: int) -> list[Floats]:
        """Per step (all rows but the last as a prompt, then the last as a one-row step), this seq alone."""
        context = LlamaContext(model, 1, CTX, CTX, THREADS, capture_hidden=capture)
        rows, out = inputs[seq], []
        for step, position in ((rows[:-1], 0), (rows[-1:], len(rows) - 1)):
            run_hidden(context, model.n_embd, {0: (step, position)})
            out.append(context.hidden_states() if capture else stage_logits(context, 0, len(step)))
        context.close()
        return out

    def together(model: LlamaModel, capture: bool, order: tuple[int, int]) -> list[list[Floats]]:
        """The same steps with both seqs in each decode, in the batch order given; per seq."""
        context = LlamaContext(model, 2, CTX, CTX, THREADS, capture_hidden=capture)
        out: list[list[Floats]] = [[], []]
        for last_step in (False, True):
            steps = {
                seq: (inputs[seq][-1:], len(inputs[seq]) - 1) if last_step else (inputs[seq][:-1], 0) for seq in order
            }
            starts = run_hidden(context, model.n_embd, steps)
            for (seq, (rows, _)), start in zip(steps.items(), starts, strict=True):
                if capture:
                    out[seq].append(context.hidden_states()[start : start + len(rows)])
                else:
                    out[seq].append(stage_logits(context, start, len(rows)))
        context.close()
        return out

    for model, capture in ((middle, True), (last, False)):
        single = [alone(model, capture, seq) for seq in (0, 1)]
        for order in ((0, 1), (1, 0)):
            batched = together(model, capture, order)
            for seq in (0, 1):
                assert len(single[seq]) == len(batched[seq]) == 2
                for one, both in zip(single[seq], batched[seq], strict=True):
                    # Rows in the wrong place differ by whole units; llama.cpp's rounding, which depends
                    # on what shares the ubatch and the cache (and on the CPU), by a few float32 ulps of
                    # the largest values involved.
                    assert one.shape == both.shape
                    assert np.abs(one - both).max() <= rounding_tolerance(one), f"seq {seq} of {order}, {capture=}"


def test_embedding_batch_bounds_and_output_flags(three: list[LlamaModel]) -> None:
    middle = three[1]
    batch = EmbeddingBatch(4, middle.n_embd)
    rows = np.ones((3, middle.n_embd), dtype=np.float32)
    assert batch.add_rows(rows, 0, 0, "last") == 0
    assert (batch.size, batch.outputs) == (3, 1)
    assert batch.add_rows(rows[0], 3, 1, "none") == 3  # a single (n_embd,) row
    assert (batch.size, batch.outputs) == (4, 1)
    with pytest.raises(IndexError):
        batch.add_rows(rows[:1], 4, 1)
    batch.clear()
    assert (batch.size, batch.outputs) == (0, 0)
    assert batch.add_rows(rows, 0, 0, 2) == 0  # a token and a proposal after it: logits for the last two rows
    assert (batch.size, batch.outputs) == (3, 2)
    with pytest.raises(ValueError, match="4 rows with logits"):
        batch.add_rows(rows, 3, 1, 4)
    batch.clear()
    batch.close()
    plain = LlamaContext(middle, 1, CTX, CTX, THREADS)
    with pytest.raises(RuntimeError, match="no hidden states"):
        plain.hidden_states()
    plain.close()
    capturing = LlamaContext(middle, 1, CTX, CTX, THREADS, capture_hidden=True)
    with pytest.raises(RuntimeError, match="no logits"):
        capturing.logits(0)
    capturing.close()


def test_a_stage_file_says_which_stage_it_is(tmp_path: Path) -> None:
    whole = write_tiny_llama(tmp_path / "whole.gguf", seed=0, n_layer=4)
    manifest = split_model(whole, 2, tmp_path / "split")
    assert LlamaModel(whole).stage is None
    positions = [LlamaModel(tmp_path / "split" / s.file).stage for s in manifest.stages]
    assert positions == [StagePosition(0, 2, 0, 2), StagePosition(1, 2, 2, 4)]
