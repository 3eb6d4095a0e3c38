"""Log-probabilities survive every hop: the worker's pieces on the wire, the journal in Redis (so a failover's
client keeps those it received), merged pieces, and a last pipeline stage's sampled tokens."""

from __future__ import annotations

import json

from swarm.client import GenerateOptions
from swarm.coordinator.relay.piece_journal import piece_json, pieces_in_order
from swarm.shared.codec import request_from_json, to_json
from swarm.shared.pieces import coalesce
from swarm.shared.stage_messages import Sampled, StageResult
from swarm.shared.types import GenerationRequest, SamplingParams, TextPiece, TokenLogprob
from swarm.wire.convert import (
    event_from_wire,
    event_to_wire,
    raw_request_from_wire,
    run_request_from_wire,
    run_request_to_wire,
)
from swarm.wire.stage_messages import tokens_from_wire, tokens_to_wire

TOP = (TokenLogprob(7, -0.25, b" a"), TokenLogprob(9, -1.5, b"\xe2\x82"))
FIRST = TextPiece(" a", (7,), (TokenLogprob(7, -0.25, b" a", TOP),))
SECOND = TextPiece("b", (8,), (TokenLogprob(8, -2.0, b"b"),))


def test_pieces_keep_their_logprobs_on_the_wire_and_in_the_journal() -> None:
    assert event_from_wire(event_to_wire("r", FIRST)) == FIRST
    assert pieces_in_order({"0": piece_json(FIRST), "1": piece_json(SECOND)}) == (FIRST, SECOND)
    plain = TextPiece("x", (1,))
    assert json.loads(piece_json(plain)) == ["x", [1]]  # pieces without logprobs are stored as before
    assert pieces_in_order({"0": piece_json(plain)}) == (plain,)


def test_merged_pieces_keep_one_logprob_per_token() -> None:
    (merged,) = coalesce([FIRST, SECOND])
    assert merged.token_ids == (7, 8) and merged.logprobs == FIRST.logprobs + SECOND.logprobs


def test_a_last_stages_logprobs_come_back_with_its_tokens() -> None:
    sent = [
        StageResult(0, token=7, logprob=TokenLogprob(7, -0.25, top=(TokenLogprob(7, -0.25),))),
        StageResult(1, token=3, following=(Sampled(4, TokenLogprob(4, -0.5)), Sampled(5))),  # a verified proposal
        StageResult(2),
    ]
    assert tokens_from_wire(tokens_to_wire(sent)) == {
        0: (Sampled(7, sent[0].logprob),),
        1: (Sampled(3), Sampled(4, TokenLogprob(4, -0.5)), Sampled(5)),
    }


def test_the_request_for_logprobs_travels_to_the_worker_and_through_redis() -> None:
    raw = raw_request_from_wire(GenerateOptions(logprobs=True, top_logprobs=3).to_wire("hi", "r1"))
    assert (raw.logprobs, raw.top_logprobs) == (True, 3)
    request = GenerationRequest("r1", "tiny", "hi", 8, SamplingParams(temperature=0.5, logprobs=True, top_logprobs=3))
    assert run_request_from_wire(run_request_to_wire(request), "tiny") == request
    assert request_from_json(to_json(request)) == request
