"""DraftLine: one sequence on a draft PC: the context its target decided, and the draft's guesses after it.

The draft keeps the line (context, then its own greedy guesses) in its KV cache. When the target
tells it what it decided, guesses the target took stay cached and the draft goes on from the end
of the line; a guess the target did not take is cut there, with everything after it, and the draft
guesses again from the corrected context. It runs ahead at most `lookahead` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarm.engine.sequence import common_prefix_length


@dataclass
class DraftLine:
    lookahead: int
    room: int  # positions its KV cells may cover (the draft's context per sequence)
    context: list[int] = field(default_factory=list)  # what the target decided so far
    line: list[int] = field(default_factory=list)  # context, then the draft's guesses after it
    decoded: int = 0  # leading tokens of line in the KV cache

    def tell(self, start: int, tokens: list[int]) -> bool:
        """The target's context from position `start` on is `tokens`; False when the draft missed what came before
        `start` (it then needs the whole context again)."""
        if start > len(self.context):
            return False
        context = self.context[:start] + tokens
        kept = common_prefix_length(self.line, context)
        self.line = self.line if kept == len(context) else list(context)  # the guesses still hold, or start over
        self.context = context
        # At least the line's last token is decoded again: its logits give the next guess.
        self.decoded = max(0, min(self.decoded, kept, len(self.line) - 1))
        return True

    @property
    def guesses(self) -> list[int]:
        return self.line[len(self.context) :]

    def wants(self, limit: int) -> list[int]:
        """The tokens to decode next (at most limit): [] while it is far enough ahead or out of room."""
        if not self.line or len(self.guesses) >= self.lookahead or len(self.line) >= self.room:
            return []
        return self.line[self.decoded : self.decoded + limit]

    def decoded_more(self, count: int) -> bool:
        """count tokens of wants() are in the cache now; True when the last one's logits give the next guess."""
        self.decoded += count
        return self.decoded == len(self.line)

    def guessed(self, token: int) -> None:
        self.line.append(token)
