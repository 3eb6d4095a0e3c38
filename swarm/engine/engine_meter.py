"""EngineMeter: what an engine has done (steps, tokens, prompt reuse, speculation) and its recent token rate."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

RATE_WINDOW_S = 10.0  # tokens/s is over the last this many seconds


@dataclass(frozen=True)
class EngineStats:
    slots_busy: int
    waiting: int
    tokens_generated: int
    tokens_per_second: float
    prompt_tokens: int
    cached_prompt_tokens: int
    steps: int = 0  # batched decode steps run so far
    step_seconds: float = 0.0  # their total duration
    proposed_tokens: int = 0  # speculation: tokens proposed for verification so far
    accepted_tokens: int = 0  # and how many of them the model's own choices confirmed
    interrupted_steps: int = 0  # cut short so that another tenant's first request went first


class EngineMeter:
    """Counted on the engine thread, read from any (plain counters: a reader sees a recent value)."""

    def __init__(self) -> None:
        self.steps = 0
        self.step_seconds = 0.0
        self.tokens_generated = 0
        self.prompt_tokens = 0
        self.cached_prompt_tokens = 0
        self.proposed_tokens = 0
        self.accepted_tokens = 0
        self.interrupted_steps = 0
        self.first_token_pauses = 0  # waits before a step, so that a first token's hops had the cores
        self._produced: deque[tuple[float, int]] = deque()

    def admitted(self, prompt_tokens: int, cached: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.cached_prompt_tokens += cached

    def produced(self, tokens: int) -> None:
        now = time.monotonic()
        self.tokens_generated += tokens
        self._produced.append((now, tokens))
        while self._produced and now - self._produced[0][0] > RATE_WINDOW_S:
            self._produced.popleft()

    def proposal_settled(self, proposed: int, accepted: int) -> None:
        self.proposed_tokens += proposed
        self.accepted_tokens += accepted

    def stats(self, slots_busy: int, waiting: int) -> EngineStats:
        now = time.monotonic()
        window = [(t, n) for t, n in list(self._produced) if now - t <= RATE_WINDOW_S]
        return EngineStats(
            slots_busy=slots_busy,
            waiting=waiting,
            tokens_generated=self.tokens_generated,
            tokens_per_second=sum(n for _, n in window) / RATE_WINDOW_S,
            prompt_tokens=self.prompt_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens,
            steps=self.steps,
            step_seconds=self.step_seconds,
            proposed_tokens=self.proposed_tokens,
            accepted_tokens=self.accepted_tokens,
            interrupted_steps=self.interrupted_steps,
        )
