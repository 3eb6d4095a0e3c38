"""DraftServicer: a draft PC's Draft service; each target worker's stream tells it contexts and gets its guesses.

Guesses come from the runner's thread as it makes them; the stream sends, per sequence, only the
latest one it has (it holds the earlier ones too), so a slow reader gets fewer, fresher messages.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator

import grpc

from swarm.engine.draft_runner import DraftRunner
from swarm.engine.speculation.draft_mailbox import DraftProposal
from swarm.shared.auth import TokenGate
from swarm.shared.vocab_fingerprint import vocab_mismatch
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class DraftServicer(pb_grpc.DraftServicer):  # type: ignore[misc]
    def __init__(self, runner: DraftRunner, model_name: str, draft_for: str, fingerprint: str, token: str) -> None:
        self._runner = runner
        self._model_name = model_name
        self._draft_for = draft_for
        self._fingerprint = fingerprint
        self._gate = TokenGate(token, "Draft call")
        self._streams = itertools.count(1)
        self.streams = 0  # open now

    async def Propose(
        self, requests: AsyncIterator[pb.DraftContext], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.DraftProposal]:
        await self._gate.check(context)
        stream = next(self._streams)
        loop = asyncio.get_running_loop()
        latest: dict[str, DraftProposal] = {}
        news = asyncio.Event()

        def answer(sequence: str, proposal: DraftProposal) -> None:  # on the runner's thread
            loop.call_soon_threadsafe(_post, sequence, proposal)

        def _post(sequence: str, proposal: DraftProposal) -> None:
            latest[sequence] = proposal
            news.set()

        async def read() -> str:
            """Passes the stream's messages to the runner; returns why it refuses the stream ("" at its end)."""
            async for message in requests:
                theirs = message.vocab_fingerprint
                if mismatch := vocab_mismatch(self._model_name, self._fingerprint, self._draft_for, theirs):
                    return mismatch
                if message.end:
                    self._runner.end(stream, message.sequence)
                elif message.sequence:
                    self._runner.tell(stream, message.sequence, message.start, tuple(message.tokens), answer)
            return ""

        reader = asyncio.create_task(read())
        self.streams += 1
        log.info("a worker opened draft stream %d from %s", stream, context.peer())
        try:
            while True:
                waiting = asyncio.create_task(news.wait())
                await asyncio.wait({waiting, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if reader.done():
                    refused = reader.result()
                    if refused:
                        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, refused)
                    return
                news.clear()
                ready = dict(latest)
                latest.clear()
                for sequence, proposal in ready.items():
                    yield pb.DraftProposal(sequence=sequence, start=proposal.start, tokens=proposal.tokens)
        finally:
            reader.cancel()
            self._runner.end(stream)
            self.streams -= 1
            log.info("draft stream %d closed", stream)
