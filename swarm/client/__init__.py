"""Python clients of a swarm: `SwarmClient` (blocking) and `AsyncSwarmClient` (asyncio)."""

from swarm.client.async_client import AsyncSwarmClient
from swarm.client.sync_client import SwarmClient
from swarm.client.types import Completion, GenerateOptions, SwarmCallError

__all__ = ["AsyncSwarmClient", "Completion", "GenerateOptions", "SwarmCallError", "SwarmClient"]
