"""EmulatedLan: processes pinned to their PC's cores; a 2-stage pipeline serves the whole model's text through links."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import llama_cpp
import pytest

from swarm.bench.lan.emulated_lan import EmulatedLan
from swarm.client import SwarmClient
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import LocalSwarm, wait_until
from swarm.shared.types import TextPiece
from tests.conftest import coordinator_answers, stop_cleanly
from tests.greedy_check import GreedyReference

CORES = sorted(os.sched_getaffinity(0))
pytestmark = pytest.mark.skipif(len(CORES) < 2, reason="two emulated PCs need two cores")
WORKER_ARGS = ("--threads", "1", "--slots", "8", "--context", "256")


def cpus_allowed(pid: int) -> set[str]:
    """Cpus_allowed_list of each thread of the process, as the kernel reports it."""
    lists = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                lists.add(line.split(":", 1)[1].strip())
    return lists


def up_workers(address: str) -> int:
    with SwarmClient(address, retries=0) as client:
        return sum(1 for w in client.status().workers if w.up)


@pytest.fixture
def lan(redis_url: str, tmp_path: Path) -> Iterator[EmulatedLan]:
    network = EmulatedLan([{CORES[0]}, {CORES[1]}], 0.001, 1e9, LocalSwarm(log_dir=tmp_path, redis_url=redis_url))
    network.start_coordinator(tmp_path)
    wait_until(lambda: coordinator_answers(network.coordinator), 30, "the coordinator")
    yield network
    stop_cleanly(network.swarm)


@pytest.fixture(scope="module")
def four_layers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("lan-model")
    whole = write_tiny_llama(folder / "four.gguf", seed=0, n_layer=4)
    manifest = split_model(whole, 2, folder / "split")
    return whole, [folder / "split" / stage.file for stage in manifest.stages]


def test_a_pcs_processes_run_only_on_its_cores_and_links_go_through_relays(
    lan: EmulatedLan, four_layers: tuple[Path, list[Path]]
) -> None:
    first = lan.start_pipeline(four_layers[1], *WORKER_ARGS, pcs=[0, 1])[-1]
    wait_until(lambda: up_workers(lan.coordinator) == 2, 60, "both stages up")
    next_stage = first.argv[first.argv.index("--next-stage") + 1]
    assert next_stage in lan.links.values(), "stage 0 must dial stage 1 through the link relay"
    for pc, processes in lan.placed.items():
        expected = str(CORES[pc])
        for process in processes:  # threads started since launch (gRPC, llama.cpp) inherited the pinning
            assert cpus_allowed(process.pid) == {expected}, f"{process.name} on PC {pc}"


def test_a_two_stage_pipeline_across_the_lan_serves_the_whole_models_greedy_text(
    lan: EmulatedLan, four_layers: tuple[Path, list[Path]]
) -> None:
    whole, stage_files = four_layers
    lan.start_pipeline(stage_files, *WORKER_ARGS, pcs=[0, 1])
    wait_until(lambda: up_workers(lan.coordinator) == 2, 60, "both stages up")
    llm = llama_cpp.Llama(str(whole), n_ctx=256, n_threads=1, verbose=False)
    expected = llm.create_completion("Hello world", max_tokens=16, temperature=0.0)["choices"][0]["text"]
    llm.close()
    prompts = [f"Prompt number {i} is about" for i in range(8)]
    with SwarmClient(lan.coordinator) as client:
        alone = client.generate("Hello world", max_tokens=16, temperature=0.0)  # decoded alone: exact
        with ThreadPoolExecutor(8) as pool:
            batched = list(pool.map(lambda p: client.generate(p, max_tokens=16, temperature=0.0), prompts))
    assert alone.text == expected
    reference = GreedyReference(whole, n_ctx=256)
    for prompt, completion in zip(prompts, batched, strict=True):
        assert len(completion.token_ids) == 16
        reference.check(prompt, completion.token_ids)  # batched: greedy up to rounding ties, never mixed
    reference.close()


def test_a_whole_model_on_another_pc_is_reached_through_the_link(
    lan: EmulatedLan, four_layers: tuple[Path, list[Path]]
) -> None:
    whole = four_layers[0]
    worker = lan.start_whole_model(whole, *WORKER_ARGS, pc=1)
    wait_until(lambda: up_workers(lan.coordinator) == 1, 60, "the worker up")
    with SwarmClient(lan.coordinator) as client:
        address = next(w.info.address for w in client.status().workers)
        got = client.generate("Hello world", max_tokens=8, temperature=0.0)
    assert address in lan.links.values(), "the coordinator must dial the worker through the link"
    assert len(got.token_ids) == 8
    assert cpus_allowed(worker.pid) == {str(CORES[1])}


def test_a_stage_killed_behind_a_link_looks_dead_and_its_stream_continues_unchanged(
    lan: EmulatedLan, slow_model: Path, tmp_path: Path
) -> None:
    stage_files = [tmp_path / "split" / s.file for s in split_model(slow_model, 2, tmp_path / "split").stages]
    started = lan.start_pipeline(stage_files, "--threads", "1", "--context", "1024", pcs=[0, 1])
    last = next(p for p in started if p.name == "stage-1")
    wait_until(lambda: up_workers(lan.coordinator) == 2, 60, "both stages up")
    with SwarmClient(lan.coordinator) as client:
        reference = client.generate("Once upon a time", max_tokens=120, temperature=0.0)
        for round_ in range(2):
            text, tokens, killed = "", 0, False
            for event in client.stream("Once upon a time", max_tokens=120, temperature=0.0, request_id=f"lan-{round_}"):
                if isinstance(event, TextPiece):
                    text += event.text
                    tokens += len(event.token_ids)
                    if not killed and tokens >= 20 + 30 * round_:
                        lan.restart(last)  # behind its link relay, on the same port: stage 0 dials it again
                        killed = True
            assert text == reference.text, f"round {round_}: text differs after the last stage died"
            assert cpus_allowed(last.pid) == {str(CORES[1])}, "the restarted stage is pinned to its PC again"
    coordinator_log = next(p for p in lan.swarm.processes if p.name == "coordinator").log_path
    assert coordinator_log is not None
    assert coordinator_log.read_text().count("resuming it elsewhere") >= 2, "a kill came after the end"
