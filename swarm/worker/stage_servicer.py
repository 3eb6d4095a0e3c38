"""StageServicer: a later pipeline stage; runs each step's rows through its layers and passes them on.

A middle stage forwards its hidden states to the next stage over one stream and hands the
tokens that come back to the stage before it; the last stage samples them itself. A middle
stage takes the next step while the stages after it compute the last one: steps and their
replies keep their order. The llama.cpp work runs on the stage's one engine thread, never
on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import grpc

from swarm.engine.session_table import NoFreeSession, SessionTable
from swarm.engine.stage_executor import CacheLost, StageExecutor
from swarm.shared import tracing
from swarm.shared.auth import TokenGate, bearer_metadata
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.stage_messages import PipelineStep, StageResult
from swarm.shared.tls import TlsFiles, aio_channel
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.grpc_errors import error_boundary
from swarm.wire.stage_messages import step_from_wire, step_to_wire, tokens_to_wire
from swarm.worker.stage_identity import next_stage_metadata, stage_refusal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Sent:
    """A step this stage computed, as its reply needs it: the sessions' ids upstream, its computing time."""

    upstream_ids: dict[int, int]
    seconds: float


class StageServicer(pb_grpc.StageServicer):  # type: ignore[misc]
    def __init__(
        self,
        executor: StageExecutor,
        next_stage: str = "",
        token: str = "",
        step_timeout_s: float = 30.0,
        tls: TlsFiles | None = None,
    ) -> None:
        if not executor.last and not next_stage:
            raise ValueError("a middle stage needs the address of the next stage")
        self._executor = executor
        self._stage = executor.model.stage  # which layers this is: upstream streams must expect it
        self._next_stage = next_stage
        self._token = token
        self._tls = tls
        self._gate = TokenGate(token, "stage call")
        self._step_timeout_s = step_timeout_s
        self._engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="swarm-stage")
        self._sessions = SessionTable(executor.slots)
        self._channel: grpc.aio.Channel | None = None
        self._role = "last" if executor.last else "middle"  # of the stages after the first

    @error_boundary
    async def Forward(
        self, requests: AsyncIterator[pb.StageStep], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StageStepResult]:
        await self._gate.check(context)
        refusal = stage_refusal(context.invocation_metadata(), self._stage)
        if refusal is not None:
            raise SwarmError(ErrorCode.FAILED_PRECONDITION, refusal)
        downstream = self._open_downstream()
        loop = asyncio.get_running_loop()
        stream = object()  # this call's session namespace
        try:
            if downstream is None:
                async for message in requests:
                    step, results, seconds = await self._apply(stream, message)
                    yield self._to_upstream(tokens_to_wire(results), _Sent(self._upstream_ids(step), seconds))
                return
            # Steps sent on and not yet answered, oldest first; the feeder's end (or failure) comes last.
            sent: asyncio.Queue[_Sent | BaseException | None] = asyncio.Queue()
            feeder = asyncio.create_task(self._feed(stream, requests, downstream, sent))
            try:
                while (step_sent := await sent.get()) is not None:
                    if isinstance(step_sent, BaseException):
                        raise step_sent
                    yield self._to_upstream(await self._next_reply(downstream), step_sent)
            finally:
                feeder.cancel()
        finally:
            if downstream is not None:
                downstream.cancel()
            ended = self._sessions.drop(stream)
            await loop.run_in_executor(self._engine_thread, self._close_sessions, ended)

    async def _apply(self, stream: object, message: pb.StageStep) -> tuple[PipelineStep, list[StageResult], float]:
        """Runs a step through this stage's layers; returns it in local ids with its results and its seconds."""
        try:
            step = self._sessions.translate(stream, step_from_wire(message, self._executor.model.n_embd))
        except ValueError as exc:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, str(exc)) from exc
        except NoFreeSession as exc:
            raise SwarmError(ErrorCode.RESOURCE_EXHAUSTED, str(exc)) from exc
        except CacheLost as exc:
            raise SwarmError(ErrorCode.FAILED_PRECONDITION, str(exc)) from exc
        started_ns = time.time_ns()
        try:
            results, seconds = await asyncio.get_running_loop().run_in_executor(self._engine_thread, self._timed, step)
        except CacheLost as exc:
            raise SwarmError(ErrorCode.FAILED_PRECONDITION, str(exc)) from exc
        for opened in step.opens:  # each request's trace gets this stage's part of its first step
            if opened.traceparent:
                tracing.past_span("stage.first_step", opened.traceparent, started_ns, stage=self._role)
        return step, results, seconds

    def _timed(self, step: PipelineStep) -> tuple[list[StageResult], float]:
        """On the engine thread: the step's results and how long its computing took (no waiting counted)."""
        started = time.perf_counter()
        results = self._executor.apply(step)
        return results, time.perf_counter() - started

    async def _feed(
        self,
        stream: object,
        requests: AsyncIterator[pb.StageStep],
        downstream: Any,
        sent: asyncio.Queue[_Sent | BaseException | None],
    ) -> None:
        """Runs each step and sends it on without waiting for the replies to the steps before it."""
        try:
            async for message in requests:
                step, results, seconds = await self._apply(stream, message)
                onward = PipelineStep(
                    step.opens,
                    step.releases,
                    tuple(replace(w, hidden=r.hidden, tokens=()) for w, r in zip(step.work, results, strict=True)),
                )
                try:
                    await downstream.write(step_to_wire(onward, bfloat16=message.bfloat16))
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
                    raise SwarmError(ErrorCode.UNAVAILABLE, f"next stage {self._next_stage} failed: {exc}") from exc
                # The ids now, not when the reply comes: a later step may give a local id to another session.
                sent.put_nowait(_Sent(self._upstream_ids(step), seconds))
        except Exception as exc:
            sent.put_nowait(exc)
        else:
            sent.put_nowait(None)

    async def _next_reply(self, downstream: Any) -> pb.StageStepResult:
        try:
            reply = await asyncio.wait_for(downstream.read(), self._step_timeout_s)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            reply, cause = grpc.aio.EOF, str(exc)
        except TimeoutError:  # a stalled next stage must not hang every session behind it
            reply, cause = grpc.aio.EOF, f"no answer within {self._step_timeout_s:.0f} s"
        else:
            cause = "it closed the stream"
        if reply is grpc.aio.EOF:
            raise SwarmError(ErrorCode.UNAVAILABLE, f"next stage {self._next_stage} failed: {cause}")
        return reply  # type: ignore[no-any-return]

    def _upstream_ids(self, step: PipelineStep) -> dict[int, int]:
        return {w.session: self._sessions.upstream(w.session) for w in step.work}

    def _to_upstream(self, result: pb.StageStepResult, sent: _Sent) -> pb.StageStepResult:
        """A step's tokens under the session ids the stage before this one uses, with this stage's seconds
        added to those of the stages after it."""
        for token in result.tokens:
            token.session = sent.upstream_ids[token.session]
        result.stages_seconds += sent.seconds
        result.slowest_stage_seconds = max(result.slowest_stage_seconds, sent.seconds)
        return result

    def _close_sessions(self, sessions: list[int]) -> None:
        for session in sessions:
            self._executor.close(session)

    def _open_downstream(self) -> Any:
        if self._executor.last:
            return None
        if self._channel is None:
            self._channel = aio_channel(self._next_stage, self._tls)
        # wait_for_ready: the next stage may still be loading its weights when the first step comes.
        metadata = (*bearer_metadata(self._token), *next_stage_metadata(self._stage))
        return pb_grpc.StageStub(self._channel).Forward(metadata=metadata, wait_for_ready=True)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._engine_thread.shutdown(wait=True)

    @error_boundary
    async def Ping(self, request: pb.StagePing, context: grpc.aio.ServicerContext) -> pb.StagePong:
        """Answered at once, off the engine thread: the stage before times it to measure the link."""
        await self._gate.check(context)
        return pb.StagePong()
