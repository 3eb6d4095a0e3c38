"""Model-free speculative decoding: proposals from a sequence's own context, and how many to verify."""

from swarm.engine.speculation.budget import SpeculationBudget
from swarm.engine.speculation.proposer import PromptLookup

__all__ = ["PromptLookup", "SpeculationBudget"]
