"""A stage measures itself: its decode steps' time per token on real llama.cpp, and its link to the next stage
over real gRPC on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from swarm.engine.llama_adapter import LlamaModel
from swarm.gguf_files.stage_files import split_model
from swarm.gguf_files.synthetic_model import write_tiny_llama
from swarm.launch.local_swarm import free_port
from swarm.shared.auth import bearer_metadata
from swarm.shared.stage_messages import StageWork
from swarm.shared.types import SamplingParams
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.worker.stage_measuring import DecodeMeter, TimedStageExecutor, probing, stage_measurement
from swarm.worker.stage_servicer import StageServicer

SESSIONS, PROMPT, DECODE_STEPS = 3, (1, 5, 9, 13, 17), 6


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("measured")
    manifest = split_model(write_tiny_llama(folder / "four.gguf", n_layer=4), 2, folder)
    return folder / manifest.stages[0].file, folder / manifest.stages[1].file


def executor(path: Path, meter: DecodeMeter, *, first: bool) -> TimedStageExecutor:
    model = LlamaModel(path)
    return TimedStageExecutor(meter, model, first=first, last=not first, slots=SESSIONS, context_per_slot=64, threads=1)


def test_decode_steps_are_timed_per_token_and_prompt_chunks_are_not(two_stages: tuple[Path, Path]) -> None:
    head_meter, tail_meter = DecodeMeter(), DecodeMeter()
    head, tail = executor(two_stages[0], head_meter, first=True), executor(two_stages[1], tail_meter, first=False)
    for session in range(SESSIONS):
        head.open(session)
        tail.open(session, SamplingParams(temperature=0.0))
    tokens = {s: PROMPT for s in range(SESSIONS)}
    position = 0
    for _ in range(1 + DECODE_STEPS):  # the prompts, then one token per session per step
        work = [StageWork(s, position, tokens=tokens[s]) for s in range(SESSIONS)]
        hidden = head.step(work)
        sampled = tail.step([StageWork(s, position, hidden=h.hidden, sample=True) for s, h in enumerate(hidden)])
        position += len(tokens[0])
        tokens = {r.session: (r.token,) for r in sampled if r.token is not None}
    for meter in (head_meter, tail_meter):
        seconds_per_token, decoded = meter.take()
        assert decoded == SESSIONS * DECODE_STEPS  # the prompt step (5 rows a session) is not counted
        assert 0 < seconds_per_token < 1
        assert meter.take() == (0.0, 0)  # each heartbeat reports the time since the one before
    head.close_all()
    tail.close_all()


async def _serve(servicer: StageServicer) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    pb_grpc.add_StageServicer_to_server(servicer, server)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    await server.start()
    return server, address


def test_a_stage_probes_its_link_to_the_next_over_grpc(two_stages: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        servicer = StageServicer(executor(two_stages[1], DecodeMeter(), first=False), "", "secret")
        server, address = await _serve(servicer)
        try:
            async with probing(address, "secret", None) as prober:
                assert prober is not None
                async with asyncio.timeout(10):
                    while prober.latest is None:
                        await asyncio.sleep(0.01)
                measured = stage_measurement(DecodeMeter(), prober)
            (link,) = measured.links
            assert link.peer == address and 0 < link.rtt_s < 1 and link.bytes_per_s > 1e6
            assert measured.decode_tokens == 0  # nothing decoded: the planner takes no time from it
            async with grpc.aio.insecure_channel(address) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await pb_grpc.StageStub(channel).Ping(pb.StagePing(), metadata=bearer_metadata("wrong"))
                assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        finally:
            await server.stop(grace=0.5)
            await servicer.close()

    asyncio.run(scenario())


def test_a_last_stage_probes_nothing() -> None:
    async def scenario() -> None:
        async with probing("", "", None) as prober:
            assert prober is None

    asyncio.run(scenario())
