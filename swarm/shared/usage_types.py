"""What usage accounting counts and reports: typed rows, summed over hour buckets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from swarm.shared.types import Finished, TextPiece


@dataclass(frozen=True)
class TokenCounts:
    prompt: int = 0
    cached_prompt: int = 0  # of the prompt tokens, those reused from a worker's KV cache
    completion: int = 0  # tokens the client received
    requests: int = 0

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(
            self.prompt + other.prompt,
            self.cached_prompt + other.cached_prompt,
            self.completion + other.completion,
            self.requests + other.requests,
        )


def finished_tokens(pieces: Iterable[TextPiece], finished: Finished | None) -> TokenCounts:
    """A request's tokens as its client got them: every piece's tokens (across failovers: the stream holds
    them all), and the prompt as its last worker counted it (None: it ended before any worker finished it)."""
    completion = sum(len(piece.token_ids) for piece in pieces)
    if finished is None:
        return TokenCounts(completion=completion, requests=1)
    cached = min(finished.cached_prompt_tokens, finished.prompt_tokens)
    return TokenCounts(finished.prompt_tokens, cached, completion, 1)


@dataclass(frozen=True)
class UsageRow:
    """The tokens of one tenant on one model served by one worker (the worker of each request's last run)."""

    tenant: str
    model: str
    worker: str
    tokens: TokenCounts


@dataclass(frozen=True)
class WorkerBusy:
    """A worker's measured busy time (at least one sequence running) and what its owner said it costs."""

    worker: str
    busy_s: float
    watts: float = 0.0
    cost_per_hour: float = 0.0


@dataclass(frozen=True)
class UsageReport:
    """Usage summed from since_hour (unix hours, inclusive) to now."""

    since_hour: int
    rows: tuple[UsageRow, ...] = ()
    workers: tuple[WorkerBusy, ...] = ()
    seconds: float = 0.0  # the window's length so far, for tokens per second

    def by_tenant(self) -> dict[str, TokenCounts]:
        return _sum_by((r.tenant, r.tokens) for r in self.rows)

    def by_model(self) -> dict[str, TokenCounts]:
        return _sum_by((r.model, r.tokens) for r in self.rows)

    def by_worker(self) -> dict[str, TokenCounts]:
        return _sum_by((r.worker, r.tokens) for r in self.rows)


def _sum_by(pairs: Iterable[tuple[str, TokenCounts]]) -> dict[str, TokenCounts]:
    sums: dict[str, TokenCounts] = {}
    for name, tokens in pairs:
        sums[name] = sums.get(name, TokenCounts()) + tokens
    return dict(sorted(sums.items()))


@dataclass(frozen=True)
class CostFigures:
    """Energy and money behind some tokens: Wh from stated watts, money from a stated hourly cost."""

    tokens: int = 0  # completion tokens
    busy_s: float = 0.0
    energy_wh: float = 0.0
    cost: float = 0.0

    @property
    def cost_per_million(self) -> float | None:
        return self.cost / self.tokens * 1e6 if self.tokens else None

    @property
    def wh_per_million(self) -> float | None:
        return self.energy_wh / self.tokens * 1e6 if self.tokens else None

    def __add__(self, other: CostFigures) -> CostFigures:
        return CostFigures(
            self.tokens + other.tokens,
            self.busy_s + other.busy_s,
            self.energy_wh + other.energy_wh,
            self.cost + other.cost,
        )


@dataclass(frozen=True)
class CostReport:
    swarm: CostFigures = CostFigures()
    by_worker: dict[str, CostFigures] = field(default_factory=dict)
    by_model: dict[str, CostFigures] = field(default_factory=dict)
    by_tenant: dict[str, CostFigures] = field(default_factory=dict)
    tokens_per_second: float = 0.0
