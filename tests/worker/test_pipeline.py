"""A pipeline over real gRPC on loopback: a head BatchEngine and stage servers give the whole model's text."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.forward import Forward
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.speculation import SpeculationBudget
from swarm.engine.stage_executor import StageExecutor
from swarm.gguf_files.stage_files import StageManifest, split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import free_port
from swarm.shared.errors import SwarmError
from swarm.shared.stage_messages import PipelineStep, SessionOpen, StageWork
from swarm.shared.types import Finished, GenerationEvent, GenerationRequest, SamplingParams, TextPiece
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.stage_messages import step_to_wire
from swarm.worker.pipeline_head import PipelineHead, StageLink
from swarm.worker.stage_servicer import StageServicer
from tests.greedy_check import GreedyReference

PROMPTS = ["Hello world", "The quick brown fox jumps over", "Once upon a time there", "good morning to you"]
SLOTS = 4
# bfloat16 keeps 8 bits of mantissa: hidden states move by ~0.4%, logits by tenths at most, not whole units.
BFLOAT16_TOLERANCE = 1.0


@pytest.fixture(scope="module")
def four_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("pipeline") / "four.gguf", seed=0, n_layer=4)


class StageServers:
    """Stages 1..K-1 served by grpc.aio on one event loop in a background thread."""

    def __init__(
        self, directory: Path, manifest: StageManifest, token: str = "", slots: int = SLOTS, context_per_slot: int = 128
    ) -> None:
        self.ports = [free_port() for _ in manifest.stages]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[grpc.aio.Server] = []
        self._servicers: list[StageServicer] = []
        count = len(manifest.stages)
        for stage in manifest.stages[1:]:
            executor = StageExecutor(
                LlamaModel(directory / stage.file),
                first=False,
                last=stage.index == count - 1,
                slots=slots,
                context_per_slot=context_per_slot,
                threads=1,
            )
            next_stage = "" if executor.last else f"127.0.0.1:{self.ports[stage.index + 1]}"
            servicer = StageServicer(executor, next_stage, token)
            self._servicers.append(servicer)
            self._servers.append(self._call(self._serve(servicer, self.ports[stage.index])))

    @property
    def executors(self) -> list[StageExecutor]:
        """The stages after the first, in order (touch them only while no step runs)."""
        return [servicer._executor for servicer in self._servicers]

    def _call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    @staticmethod
    async def _serve(servicer: StageServicer, port: int) -> grpc.aio.Server:
        server = grpc.aio.server()
        pb_grpc.add_StageServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        return server

    def stop(self) -> None:
        for server in self._servers:
            self._call(server.stop(grace=0.5))
        for servicer in self._servicers:
            self._call(servicer.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def start_head(
    directory: Path,
    manifest: StageManifest,
    servers: StageServers,
    token: str = "",
    bfloat16: bool = False,
    slots: int = SLOTS,
    wrap: Callable[[Forward], Forward] = lambda forward: forward,
    context_per_slot: int = 128,
    speculate: bool = False,
    speculation: SpeculationBudget | None = None,
    measured_groups: bool = True,
) -> BatchEngine:
    """The first stage's engine, one step in flight per stage; wrap may watch its Forward."""
    first = LlamaModel(directory / manifest.stages[0].file)
    executor = StageExecutor(first, first=True, last=False, slots=slots, context_per_slot=context_per_slot, threads=1)
    link = StageLink(f"127.0.0.1:{servers.ports[1]}", token, stage=first.stage)
    engine = BatchEngine(
        first,
        EngineConfig(
            slots=slots,
            context_per_slot=context_per_slot,
            threads=1,
            speculate=speculate,
            speculation=speculation or SpeculationBudget(),
        ),
        forward=wrap(PipelineHead(executor, link, bfloat16, len(manifest.stages), measured_groups)),
    )
    engine.start()
    return engine


def run_all(engine: BatchEngine, prompts: list[str], max_tokens: int) -> dict[str, list[int]]:
    """The token ids generated for each prompt, all prompts running at once."""
    events: queue.SimpleQueue[tuple[str, GenerationEvent | SwarmError]] = queue.SimpleQueue()
    for prompt in prompts:
        request = GenerationRequest(prompt, "tiny", prompt, max_tokens, SamplingParams(temperature=0.0))
        engine.submit(request, lambda event, p=prompt: events.put((p, event)))
    tokens: dict[str, list[int]] = {p: [] for p in prompts}
    finished = 0
    while finished < len(prompts):
        prompt, event = events.get(timeout=30)
        if isinstance(event, SwarmError):
            raise event
        if isinstance(event, TextPiece):
            tokens[prompt] += event.token_ids
        elif isinstance(event, Finished):
            finished += 1
    return tokens


@pytest.fixture(params=[2, 3], ids=["2-stages", "3-stages"])
def pipeline(request: pytest.FixtureRequest, four_layers: Path, tmp_path: Path) -> Iterator[BatchEngine]:
    manifest = split_model(four_layers, request.param, tmp_path)
    servers = StageServers(tmp_path, manifest)
    engine = start_head(tmp_path, manifest, servers)
    yield engine
    engine.stop()
    servers.stop()


def test_concurrent_requests_through_a_grpc_pipeline_match_the_whole_model(
    pipeline: BatchEngine, four_layers: Path
) -> None:
    reference = GreedyReference(four_layers, n_ctx=256)
    for run in (run_all(pipeline, PROMPTS, 16), run_all(pipeline, PROMPTS[:2], 16)):  # then slots are reused
        for prompt, tokens in run.items():
            assert len(tokens) == 16
            reference.check(prompt, tokens)  # sessions share batches: greedy up to rounding ties
    reference.close()


def test_bfloat16_hidden_states_keep_the_greedy_text_on_the_synthetic_model(four_layers: Path, tmp_path: Path) -> None:
    manifest = split_model(four_layers, 3, tmp_path)
    servers = StageServers(tmp_path, manifest)
    engine = start_head(tmp_path, manifest, servers, bfloat16=True)
    try:
        tokens = run_all(engine, PROMPTS, 16)
    finally:
        engine.stop()
        servers.stop()
    reference = GreedyReference(four_layers, n_ctx=256)
    for prompt in PROMPTS:
        assert len(tokens[prompt]) == 16
        reference.check(prompt, tokens[prompt], tolerance=BFLOAT16_TOLERANCE)
    reference.close()


def test_a_reply_carries_the_seconds_each_later_stage_computed_its_step(four_layers: Path, tmp_path: Path) -> None:
    manifest = split_model(four_layers, 3, tmp_path)
    servers = StageServers(tmp_path, manifest)
    first = LlamaModel(tmp_path / manifest.stages[0].file)
    executor = StageExecutor(first, first=True, last=False, slots=SLOTS, context_per_slot=128, threads=1)
    link = StageLink(f"127.0.0.1:{servers.ports[1]}")
    try:
        prompt = tuple(first.tokenize(PROMPTS[1]))
        executor.open(0)
        hidden = executor.step([StageWork(0, 0, tokens=prompt, sample=True)])[0].hidden
        greedy = SamplingParams(temperature=0.0)
        step = PipelineStep((SessionOpen(0, greedy, prompt),), (), (StageWork(0, 0, hidden=hidden, sample=True),))
        link.send(step_to_wire(step, bfloat16=False))
        reply = link.receive()
    finally:
        link.close()
        executor.close_all()
        servers.stop()
    assert list(reply.tokens) == [0] and len(reply.tokens[0]) == 1
    # Two stages after the first: their sum is more than the slower one, and at most twice it.
    assert 0 < reply.slowest_seconds < reply.seconds <= 2 * reply.slowest_seconds


def test_a_head_of_another_layout_is_refused_by_the_next_stage_instead_of_skipping_layers(
    four_layers: Path, tmp_path: Path
) -> None:
    """A re-planned head (layers 0-2) that reaches a next stage still serving the old plan (layers 1-3 of
    [0, 1), [1, 4)) would decode wrong tokens: the stage refuses the stream, and the step fails."""
    old = split_model(four_layers, [(0, 1), (1, 4)], tmp_path / "old")
    new = split_model(four_layers, [(0, 2), (2, 4)], tmp_path / "new")
    servers = StageServers(tmp_path / "old", old)
    head = LlamaModel(tmp_path / "new" / new.stages[0].file)
    executor = StageExecutor(head, first=True, last=False, slots=SLOTS, context_per_slot=128, threads=1)
    link = StageLink(f"127.0.0.1:{servers.ports[1]}", stage=head.stage)
    try:
        prompt = tuple(head.tokenize(PROMPTS[1]))
        executor.open(0)
        hidden = executor.step([StageWork(0, 0, tokens=prompt, sample=True)])[0].hidden
        opened = SessionOpen(0, SamplingParams(temperature=0.0), prompt)
        step = PipelineStep((opened,), (), (StageWork(0, 0, hidden=hidden, sample=True),))
        link.send(step_to_wire(step, bfloat16=False))
        with pytest.raises(ConnectionError, match=r"expects stage 1/2@2 .* this is stage 1/2@1"):
            link.receive()
        assert servers.executors[0].cached_positions(0) == 0  # the old stage ran nothing of it
    finally:
        link.close()
        executor.close_all()
        servers.stop()
