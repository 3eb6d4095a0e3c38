"""swarm: LLM inference on fleets of ordinary CPUs."""

__version__ = "0.1.0"
