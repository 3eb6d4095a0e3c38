"""The bodies of a chat answer that may call tools: its calls read out of the text, whole or as stream chunks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from swarm.coordinator.openai_http.responses import ChatShape, usage
from swarm.coordinator.openai_http.tool_dialect import ToolCall, ToolCallReader
from swarm.shared.types import Finished, FinishReason, TokenLogprob


@dataclass(frozen=True)
class ToolChatShape(ChatShape):
    """A ChatShape whose text goes through a ToolCallReader: content as it comes, each call once complete."""

    reader: ToolCallReader = field(default_factory=ToolCallReader)

    def finish_reason(self, finished: Finished) -> str:
        # An answer that ended on its own after calling tools waits for their results.
        return "tool_calls" if self.reader.calls and finished.reason is FinishReason.STOP else finished.reason.value

    def body(self, text: str, finished: Finished, logprobs: Sequence[TokenLogprob] = ()) -> dict[str, Any]:
        content, calls = self.reader.feed(text)
        content += self.reader.finish()
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = [call.as_openai() for call in calls]
        reason = self.finish_reason(finished)
        choice = {"index": 0, "message": message, "logprobs": self._logprobs(logprobs, 0), "finish_reason": reason}
        return {**self._envelope("chat.completion"), "choices": [choice], "usage": usage(finished)}

    def text_chunks(
        self, text: str, logprobs: Sequence[TokenLogprob] = (), sent_chars: int = 0
    ) -> list[dict[str, Any]]:
        # The piece's log-probabilities go with its content, if any (a call's tokens are not content).
        before = len(self.reader.calls)
        content, calls = self.reader.feed(text)
        return [*super().text_chunks(content, logprobs, sent_chars), *self._call_chunks(calls, before)]

    def final_chunks(self, finished: Finished) -> list[dict[str, Any]]:
        return [*super().text_chunks(self.reader.finish()), *super().final_chunks(finished)]

    def _call_chunks(self, calls: list[ToolCall], first_index: int) -> list[dict[str, Any]]:
        # Each call comes whole in one delta: its index, id, name and all of its arguments.
        return [
            self._chunk(
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": first_index + i, **call.as_openai()}]},
                    "logprobs": None,
                    "finish_reason": None,
                }
            )
            for i, call in enumerate(calls)
        ]
