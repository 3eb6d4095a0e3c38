"""Messages of a pipeline step: what each stage receives and returns, free of llama.cpp and of the wire."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from swarm.shared.types import SamplingParams, TokenLogprob

HiddenStates = npt.NDArray[np.float32]  # (rows, n_embd): one row per token


@dataclass(frozen=True)
class StageWork:
    """One session's rows for one step: tokens (first stage) or hidden states (later stages)."""

    session: int  # the session's sequence id, the same on every stage
    position: int  # position of the first row in the session
    tokens: tuple[int, ...] = ()
    hidden: HiddenStates | None = None
    sample: bool = False  # last stage: sample the next token from the last row
    # Speculation: the tokens of the last len(proposal) rows are a proposal; the last stage samples each of the
    # rows from the one before it on and keeps the tokens its verification decides (rows of the rest leave).
    proposal: tuple[int, ...] = ()
    # Before these rows, the session's cells from `position` on leave the cache: a proposal's rejected rows,
    # which every stage but the last (it verified them) still holds from the session's previous step.
    trim: bool = False

    @property
    def rows(self) -> int:
        return len(self.tokens) if self.hidden is None else len(self.hidden)


@dataclass(frozen=True)
class SessionOpen:
    """A session starting on every stage: fresh KV cells; the last stage builds its sampler."""

    session: int
    sampling: SamplingParams
    prompt: tuple[int, ...] = ()  # the repetition penalty's history
    keep: int = 0  # cached positions of the session's last run to keep (a shared prompt prefix)
    traceparent: str = ""  # the request's trace, for each stage's span of the session's first step
    generated: int = 0  # prompt's last tokens the session generated before (a failover's): the grammar replays them


@dataclass(frozen=True)
class PipelineStep:
    """What travels from stage to stage per decode step: session changes, then every session's rows."""

    opens: tuple[SessionOpen, ...] = ()
    releases: tuple[int, ...] = ()  # applied before the opens: a slot may end one session and start the next
    work: tuple[StageWork, ...] = ()


@dataclass(frozen=True)
class Sampled:
    """A sampled token, with its log-probabilities when the session's sampling asks for them."""

    token: int
    logprob: TokenLogprob | None = None


@dataclass(frozen=True)
class StageResult:
    session: int
    hidden: HiddenStates | None = None  # a non-final stage: one row per input row
    token: int | None = None  # the last stage, when asked to sample
    logprob: TokenLogprob | None = None  # with the token, when the session's sampling asks for logprobs
    following: tuple[Sampled, ...] = ()  # a verified proposal: the tokens decided after `token`, in order

    @property
    def decided(self) -> tuple[Sampled, ...]:
        """Every token the last stage decided for the session in this step (none when it did not sample)."""
        return () if self.token is None else (Sampled(self.token, self.logprob), *self.following)
