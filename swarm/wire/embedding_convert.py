"""Converts embedding requests and results between protobuf and swarm.shared.embedding_messages."""

from __future__ import annotations

from swarm.shared.embedding_messages import EmbedInput, EmbedRequest, EmbedResult
from swarm.wire import swarm_pb2 as pb


def embed_request_to_wire(request: EmbedRequest) -> pb.EmbedRequest:
    inputs = [pb.EmbedInput(text=i) if isinstance(i, str) else pb.EmbedInput(tokens=i) for i in request.inputs]
    return pb.EmbedRequest(model=request.model, inputs=inputs, request_id=request.request_id)


def embed_request_from_wire(msg: pb.EmbedRequest) -> EmbedRequest:
    inputs: tuple[EmbedInput, ...] = tuple(tuple(i.tokens) if i.tokens else i.text for i in msg.inputs)
    return EmbedRequest(msg.model, inputs, msg.request_id)


def embed_result_to_wire(result: EmbedResult) -> pb.EmbedResponse:
    return pb.EmbedResponse(
        model=result.model,
        embeddings=[pb.Embedding(values=v) for v in result.vectors],
        prompt_tokens=result.prompt_tokens,
        worker_id=result.worker_id,
    )


def embed_result_from_wire(msg: pb.EmbedResponse) -> EmbedResult:
    return EmbedResult(msg.model, tuple(tuple(e.values) for e in msg.embeddings), msg.prompt_tokens, msg.worker_id)
