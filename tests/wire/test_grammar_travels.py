"""A request's grammar and its trigger reach the worker unchanged: client to coordinator, coordinator to worker,
and Redis."""

from swarm.client import GenerateOptions
from swarm.shared.codec import request_from_json, to_json
from swarm.shared.types import GenerationRequest, SamplingParams
from swarm.wire.convert import raw_request_from_wire, run_request_from_wire, run_request_to_wire

GRAMMAR = 'root ::= "{" [a-z]+ "}"'


def test_the_grammar_travels_every_hop_and_a_record_without_one_reads_as_unconstrained() -> None:
    raw = raw_request_from_wire(GenerateOptions(grammar=GRAMMAR, grammar_trigger="{").to_wire("hi", "r1"))
    assert (raw.grammar, raw.grammar_trigger) == (GRAMMAR, "{")
    sampling = SamplingParams(temperature=0.5, grammar=GRAMMAR, grammar_trigger="{")
    request = GenerationRequest("r1", "tiny", "hi", 8, sampling, resume_tokens=(4, 5))
    assert run_request_from_wire(run_request_to_wire(request), "tiny") == request
    assert request_from_json(to_json(request)) == request
    older = to_json(GenerationRequest("r2", "tiny", "hi", 8, SamplingParams()))
    older = older.replace(',"grammar":""', "").replace(',"grammar_trigger":""', "")
    assert "grammar" not in older and request_from_json(older).sampling == SamplingParams(seed=0)
