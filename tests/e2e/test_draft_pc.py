"""A draft PC (`swarm join --draft-for MODEL`) through a real swarm: its proposals are used, the text is the same,
a draft killed mid-stream changes nothing, and a draft of another vocabulary is refused."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from swarm.client import SwarmClient
from swarm.engine.llama_adapter import LlamaModel
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import wait_until
from swarm.shared.types import Finished, TextPiece
from swarm.shared.vocab_fingerprint import vocab_fingerprint
from swarm.worker import draft_link
from swarm.worker.draft_link import DraftLink
from tests.e2e.test_failover import MakeSwarm

# The target runs with --speculate off, so every proposal it verifies is the draft's. The slow model (and so the
# paced one) has near ties, where a step of more rows may round to the other side: greedily, this prompt's first
# 150 tokens win by at least 0.067 (measured with llama-cpp-python), far more than rounding moves a logit.
PROMPT = "one two three four five six"
LONG = 120  # tokens: seconds of the paced model, so a kill lands mid-stream


@pytest.fixture(scope="module")
def paced_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The slow model with as many idle layers again: it predicts exactly what the slow model does, at half its
    speed, so the slow model is a draft for it that guesses every token and runs ahead of it."""
    path = tmp_path_factory.mktemp("models") / "paced.gguf"
    shape = dict(n_layer=6, n_embd=384, n_head=6, n_head_kv=2, n_ff=1536, context_length=1024)
    return write_tiny_llama(path, seed=3, idle_layers=6, **shape)


def vocab_fingerprint_of(model: Path) -> str:
    loaded = LlamaModel(model)
    try:
        return vocab_fingerprint(loaded.vocab_size, loaded.token_bytes)
    finally:
        loaded.close()


def drafted(client: SwarmClient) -> bool:
    """Whether a short greedy request got proposals (the target is paired with the draft and takes them)."""
    return client.generate(PROMPT, max_tokens=12, temperature=0.0).finished.proposed_tokens > 0


def test_a_draft_pc_proposes_and_the_text_is_unchanged(
    make_swarm: MakeSwarm, slow_model: Path, paced_model: Path
) -> None:
    swarm = make_swarm(workers=1, model=paced_model)
    swarm.add_worker("--draft-for", "paced", name="draft", model=slow_model)
    swarm.wait_for_workers(2)
    with swarm.client() as client:
        status = client.status()
        assert [w.info.role for w in status.workers if w.info.draft_for] == ["draft for paced"]
        assert [m.name for m in client.list_models()] == ["paced"]  # the draft serves no model of its own
        wait_until(lambda: drafted(client), 20, "the worker takes the draft's proposals")
        plain = client.generate(PROMPT, max_tokens=80, temperature=0.0, speculate=False)
        assert (plain.finished.proposed_tokens, plain.finished.accepted_tokens) == (0, 0)
        fast = client.generate(PROMPT, max_tokens=80, temperature=0.0)
        counts = f"{fast.finished.accepted_tokens} of {fast.finished.proposed_tokens} proposals accepted"
        assert fast.text == plain.text, counts
        # The draft predicts what the target does: its guesses are the target's choices, so most are taken.
        assert fast.finished.accepted_tokens > fast.finished.proposed_tokens // 2 > 0, counts
        # A sampled request verifies the draft's greedy guesses with its own sampler. Its text is not compared
        # with one drawn without speculation: llama.cpp computes a row of a 1+k-row step differently from a
        # step of one row (up to 0.02 in this model's logits), enough to move a draw at this temperature.
        # That the draws keep their distribution is the chi-square test's (tests/engine/test_speculation_engine.py).
        drawn = client.generate(PROMPT, max_tokens=60, temperature=0.9, seed=16)
        counts = f"{drawn.finished.accepted_tokens} of {drawn.finished.proposed_tokens} proposals accepted"
        assert drawn.finished.completion_tokens == 60, counts
        assert 0 <= drawn.finished.accepted_tokens <= drawn.finished.proposed_tokens > 0, counts
        assert drawn.text != plain.text[: len(drawn.text)]  # it was sampled, not greedy


def test_a_draft_pc_killed_mid_stream_changes_nothing(
    make_swarm: MakeSwarm, slow_model: Path, paced_model: Path
) -> None:
    swarm = make_swarm(workers=1, model=paced_model)
    draft = swarm.add_worker("--draft-for", "paced", name="draft", model=slow_model)
    swarm.wait_for_workers(2)
    with swarm.client() as client:
        wait_until(lambda: drafted(client), 20, "the worker takes the draft's proposals")
        unfailed = client.generate(PROMPT, max_tokens=LONG, temperature=0.0)
        assert unfailed.finished.accepted_tokens > 0
        tokens: list[int] = []
        text, finished, killed_at = "", None, 0
        for event in client.stream(PROMPT, max_tokens=LONG, temperature=0.0):
            if isinstance(event, TextPiece):
                tokens += event.token_ids
                text += event.text
                if not killed_at and len(tokens) >= 15:
                    draft.kill()
                    killed_at = len(tokens)
            elif isinstance(event, Finished):
                finished = event
        assert finished is not None
        assert 0 < killed_at < LONG, "the draft was not killed mid-stream"
        assert text == unfailed.text
        assert finished.completion_tokens == LONG
        later = client.generate(PROMPT, max_tokens=LONG, temperature=0.0)
        assert later.text == unfailed.text
        assert later.finished.proposed_tokens == 0  # nothing proposes any more: the draft is gone


def test_a_draft_of_another_vocabulary_is_refused(make_swarm: MakeSwarm, tmp_path: Path) -> None:
    other = write_tiny_llama(tmp_path / "other.gguf", seed=1, extra_pieces=("▁zebra", "▁quokka"))
    swarm = make_swarm(workers=1)
    draft = swarm.add_worker("--draft-for", "tiny", name="draft", model=other)
    wait_until(lambda: not draft.alive, 30, "the mismatched draft to exit")
    assert draft.process is not None and draft.process.returncode != 0
    log = draft.log_tail()
    assert "'other'" in log and "'tiny'" in log and "vocabulary" in log, log
    assert len(swarm.up_workers()) == 1


def test_a_stalled_draft_pc_holds_nothing_up_and_is_dropped(
    make_swarm: MakeSwarm, slow_model: Path, paced_model: Path
) -> None:
    swarm = make_swarm(workers=0, model=paced_model)
    target = swarm.add_worker(name="target")
    draft = swarm.add_worker("--draft-for", "paced", name="draft", model=slow_model)
    swarm.wait_for_workers(2)
    with swarm.client() as client:
        wait_until(lambda: drafted(client), 20, "the worker takes the draft's proposals")
        unfailed = client.generate(PROMPT, max_tokens=LONG, temperature=0.0)
        os.kill(draft.pid, signal.SIGSTOP)  # alive and connected, but silent: no error ever comes
        try:
            stalled = client.generate(PROMPT, max_tokens=LONG, temperature=0.0)
            assert stalled.text == unfailed.text
            assert stalled.finished.accepted_tokens == 0  # nothing came from the draft
            # Dropped by the worker (no answer to its news) or unpaired by the coordinator (no heartbeat), whichever
            # comes first.
            wait_until(lambda: "going on without" in target.log_tail(), 20, "the worker to drop the draft")
        finally:
            os.kill(draft.pid, signal.SIGCONT)


def test_a_worker_drops_a_draft_that_stops_answering_its_news(
    make_swarm: MakeSwarm, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link's own stall check, without the coordinator (which unpairs a frozen draft once its heartbeats stop)."""
    monkeypatch.setattr(draft_link, "STALL_S", 1.0)
    swarm = make_swarm(workers=0)
    draft = swarm.add_worker("--draft-for", "tiny", name="draft")
    swarm.wait_for_workers(1)
    with swarm.client() as client:
        (address,) = [w.info.address for w in client.status().workers]

    async def scenario() -> tuple[list[int], int]:
        link = DraftLink(vocab_fingerprint_of(tiny_model))
        link.bind(asyncio.get_running_loop())
        link.use(address)
        context = [1, 30, 31, 32]
        link.extend("s", 0, context)
        guessed: list[int] = []
        for _ in range(100):  # a real answer first: the stream works
            await asyncio.sleep(0.05)
            if guessed := link.mailbox.take("s", context, 4):
                break
        os.kill(draft.pid, signal.SIGSTOP)
        try:
            link.extend("s", len(context), guessed[:1])
            for _ in range(100):
                await asyncio.sleep(0.05)
                if link.failures:
                    break
            return guessed, link.failures
        finally:
            os.kill(draft.pid, signal.SIGCONT)
            await link.close()

    guessed, failures = asyncio.run(scenario())
    assert guessed, "the draft never answered"
    assert failures == 1


def test_a_pipeline_s_first_stage_verifies_a_draft_pc_s_guesses_through_its_stages(
    make_swarm: MakeSwarm, slow_model: Path, paced_model: Path, tmp_path: Path
) -> None:
    manifest = split_model(paced_model, 2, tmp_path / "paced-2")
    swarm = make_swarm(workers=0, model=paced_model)
    swarm.processes.start_pipeline(
        swarm.address, [tmp_path / "paced-2" / s.file for s in manifest.stages], "--threads", "1"
    )
    swarm.add_worker("--draft-for", "paced", name="draft", model=slow_model)
    swarm.wait_for_workers(3)
    with swarm.client() as client:
        wait_until(lambda: drafted(client), 20, "the first stage takes the draft's proposals")
        plain = client.generate(PROMPT, max_tokens=80, temperature=0.0, speculate=False)
        fast = client.generate(PROMPT, max_tokens=80, temperature=0.0)
        assert fast.text == plain.text
        assert fast.finished.accepted_tokens > 0
