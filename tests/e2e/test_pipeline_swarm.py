"""A pipeline in a real swarm: stage workers that start without the model fetch their stage from the coordinator."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import llama_cpp
import pytest

from swarm.gguf_files.stage_files import cached_split, split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import free_port
from swarm.shared.hashing import sha256_of
from tests.conftest import RunningSwarm
from tests.greedy_check import GreedyReference

MakeSwarm = Callable[..., RunningSwarm]
GEMMA_PROMPTS = ["The capital of France is", "Water boils at a temperature of"]


def test_workers_without_the_model_download_their_stage_and_serve_it(make_swarm: MakeSwarm, tmp_path: Path) -> None:
    whole = write_tiny_llama(tmp_path / "four.gguf", seed=0, n_layer=4)
    stages_dir = tmp_path / "stages"
    manifest = split_model(whole, 2, stages_dir / "four-2")
    swarm = make_swarm(workers=0, coordinator_args=("--stages-dir", str(stages_dir)))
    worker_env = {"XDG_CACHE_HOME": str(tmp_path / "worker-cache")}  # an empty cache: nothing on disk yet
    last_port = free_port()
    swarm.processes.start_worker(
        swarm.address,
        Path("four-2:1"),
        "--threads",
        "1",
        "--listen",
        f"127.0.0.1:{last_port}",
        name="fetch-stage-1",
        env=worker_env,
    )
    swarm.processes.start_worker(
        swarm.address,
        Path("four-2:0"),
        "--threads",
        "1",
        "--next-stage",
        f"127.0.0.1:{last_port}",
        name="fetch-stage-0",
        env=worker_env,
    )
    swarm.wait_for_workers(2)
    with swarm.client() as client:
        roles = sorted(w.info.role for w in client.status().workers)
        got = client.generate("Hello world", max_tokens=12, temperature=0.0)
    assert roles == ["stage 1/2 L0-1", "stage 2/2 L2-3"]
    llm = llama_cpp.Llama(str(whole), n_ctx=256, n_threads=1, verbose=False)
    assert got.text == llm.create_completion("Hello world", max_tokens=12, temperature=0.0)["choices"][0]["text"]
    llm.close()
    for stage in manifest.stages:  # each worker holds exactly its own stage file, checked by sha256
        fetched = tmp_path / "worker-cache" / "swarm" / "downloads" / "four-2" / stage.file
        assert sha256_of(fetched) == stage.sha256


def test_asking_for_a_stage_the_coordinator_does_not_have_fails_with_a_clear_line(
    make_swarm: MakeSwarm, tmp_path: Path
) -> None:
    swarm = make_swarm(workers=0, coordinator_args=("--stages-dir", str(tmp_path)))
    worker = swarm.processes.start_worker(
        swarm.address, Path("nothing-2:0"), name="no-such-model", env={"XDG_CACHE_HOME": str(tmp_path / "cache")}
    )
    assert worker.process is not None and worker.process.wait(60) == 2
    worker.stop()
    last_line = (worker.log_path.read_text() if worker.log_path else "").strip().splitlines()[-1]
    assert last_line.startswith("swarm join: error:") and "nothing-2" in last_line


@pytest.fixture(scope="module")
def gemma_reference(gemma_model: Path) -> dict[str, str]:
    llm = llama_cpp.Llama(str(gemma_model), n_ctx=512, n_threads=2, verbose=False)
    texts = {p: llm.create_completion(p, max_tokens=32, temperature=0.0)["choices"][0]["text"] for p in GEMMA_PROMPTS}
    llm.close()
    return texts


# Three stages: a first, a middle and a last (two stages of Gemma are checked in-process by
# tests/gguf_files/test_stage_files.py, and two-stage swarms by the tiny-model tests here).
@pytest.mark.slow
@pytest.mark.parametrize("stages", [3])
def test_gemma_pipelines_generate_the_whole_models_greedy_text(
    make_swarm: MakeSwarm, gemma_model: Path, gemma_reference: dict[str, str], tmp_path: Path, stages: int
) -> None:
    swarm = make_swarm(workers=0)
    files = cached_split(gemma_model, stages, tmp_path / "stages")
    swarm.processes.start_pipeline(swarm.address, files, "--threads", "1", "--slots", "2", "--context", "512")
    swarm.wait_for_workers(stages)
    with swarm.client() as client:
        for prompt, expected in gemma_reference.items():
            assert client.generate(prompt, max_tokens=32, temperature=0.0).text == expected, prompt


def test_two_first_stage_replicas_share_one_last_stage_without_mixing_their_sessions(
    make_swarm: MakeSwarm, tmp_path: Path
) -> None:
    whole = write_tiny_llama(tmp_path / "four.gguf", seed=0, n_layer=4)
    manifest = split_model(whole, 2, tmp_path / "split")
    first, last = (tmp_path / "split" / s.file for s in manifest.stages)
    swarm = make_swarm(workers=0, model=whole)
    last_port = free_port()
    swarm.add_worker("--slots", "8", "--listen", f"127.0.0.1:{last_port}", name="last", model=last)
    for name in ("head-a", "head-b"):  # both number their sessions 0-3 on the same last stage
        swarm.add_worker("--slots", "4", "--next-stage", f"127.0.0.1:{last_port}", name=name, model=first)
    swarm.wait_for_workers(3)
    prompts = [f"Prompt number {i} is about" for i in range(8)]
    with swarm.client() as client, ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda p: client.generate(p, max_tokens=24, temperature=0.0), prompts))
    assert len({g.finished.worker_id for g in got}) == 2, "both heads must have served"
    reference = GreedyReference(whole, n_ctx=256)
    for prompt, completion in zip(prompts, got, strict=True):
        assert len(completion.token_ids) == 24
        reference.check(prompt, completion.token_ids)  # batched sessions: greedy up to ties, never mixed
    reference.close()


@pytest.mark.parametrize("stages", [2, 3])
def test_a_prompt_extending_an_earlier_one_reuses_its_prefix_on_every_stage(
    make_swarm: MakeSwarm, tmp_path: Path, stages: int
) -> None:
    whole = write_tiny_llama(tmp_path / "six.gguf", seed=2, n_layer=6)
    files = [tmp_path / "split" / s.file for s in split_model(whole, stages, tmp_path / "split").stages]
    swarm = make_swarm(workers=0, model=whole)
    swarm.processes.start_pipeline(swarm.address, files, "--threads", "1", "--slots", "2", "--context", "256")
    swarm.wait_for_workers(stages)
    first = "A conversation: the user asks about the weather in the mountains today and"
    llm = llama_cpp.Llama(str(whole), n_ctx=256, n_threads=1, verbose=False)
    with swarm.client() as client:
        earlier = client.generate(first, max_tokens=16, temperature=0.0)
        follow_up = first + earlier.text + " then asks about tomorrow"
        later = client.generate(follow_up, max_tokens=16, temperature=0.0)
    assert later.finished.cached_prompt_tokens > 10  # the earlier prompt and answer were kept on every stage
    assert later.text == llm.create_completion(follow_up, max_tokens=16, temperature=0.0)["choices"][0]["text"]
    llm.close()
