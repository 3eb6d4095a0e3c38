"""A request's tenant reaches its worker in the RunRequest, so the engine can tell tenants apart."""

from swarm.shared.types import GenerationRequest, SamplingParams
from swarm.wire import swarm_pb2 as pb
from swarm.wire.convert import run_request_from_wire, run_request_to_wire


def test_the_tenant_travels_in_the_run_request_and_a_request_without_one_reads_as_no_tenant() -> None:
    request = GenerationRequest("r1", "tiny", "hi", 8, SamplingParams(temperature=0.5), tenant="quiet-key")
    sent = run_request_to_wire(request).SerializeToString()
    assert run_request_from_wire(pb.RunRequest.FromString(sent), "tiny") == request
    older = pb.RunRequest(request_id="r2", prompt="hi", max_tokens=8).SerializeToString()  # a coordinator before it
    assert run_request_from_wire(pb.RunRequest.FromString(older), "tiny").tenant == ""
