"""Python clients of a swarm: `SwarmClient` (blocking), `AsyncSwarmClient` (asyncio), `BatchClient` (batch jobs)."""

from swarm.client.async_client import AsyncSwarmClient
from swarm.client.batch_client import BatchClient
from swarm.client.sync_client import SwarmClient
from swarm.client.types import Completion, GenerateOptions, SwarmCallError

__all__ = ["AsyncSwarmClient", "BatchClient", "Completion", "GenerateOptions", "SwarmCallError", "SwarmClient"]
