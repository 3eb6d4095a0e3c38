"""TracedRequest: one request as its client saw it (sent, first piece), with the trace id of its spans."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TracedRequest:
    trace_id: str  # of the client's own span around the call ("" when untraced)
    sent_ns: int
    first_ns: int  # time.time_ns() stamps: they line up with the spans' own

    @property
    def first_token_ms(self) -> float:
        return (self.first_ns - self.sent_ns) / 1e6
