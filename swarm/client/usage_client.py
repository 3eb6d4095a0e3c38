"""Reads a swarm's usage (tokens per tenant, model and worker, and busy time) from its Usage service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swarm.client.failover import channel_options, coordinator_addresses, first_answer
from swarm.shared.auth import bearer_metadata
from swarm.shared.tls import TlsFiles, channel
from swarm.shared.usage_types import UsageReport
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.usage_convert import usage_from_wire


def fetch_usage(
    address: str | Sequence[str] | None,
    since_hour: int = 0,
    tenant: str = "",
    *,
    api_key: str = "",
    tls: TlsFiles | None = None,
    timeout_s: float = 30.0,
) -> UsageReport:
    """Usage from since_hour (unix hours) on, of one tenant or all; tries each coordinator until one answers."""
    addresses = coordinator_addresses(address)
    channels = [channel(a, tls, channel_options(a)) for a in addresses]
    try:
        stubs: list[Any] = [pb_grpc.UsageStub(c) for c in channels]
        request = pb.UsageRequest(since_hour=since_hour, tenant=tenant)
        metadata = bearer_metadata(api_key)
        _, answer = first_answer(
            len(addresses), 0, lambda i: stubs[i].GetUsage(request, metadata=metadata, timeout=timeout_s)
        )
        return usage_from_wire(answer)
    finally:
        for c in channels:
            c.close()
