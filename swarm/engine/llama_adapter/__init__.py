"""The one package that calls llama.cpp (through llama-cpp-python's low-level ctypes API).

Everything else in swarm uses llama.cpp through the names below.
"""

from swarm.engine.llama_adapter.batches import EmbeddingBatch, TokenBatch
from swarm.engine.llama_adapter.context import LlamaContext
from swarm.engine.llama_adapter.model import LlamaModel, ModelLoadError, StagePosition, check_gguf
from swarm.engine.llama_adapter.sampler import Sampler

__all__ = [
    "EmbeddingBatch",
    "LlamaContext",
    "LlamaModel",
    "ModelLoadError",
    "Sampler",
    "StagePosition",
    "TokenBatch",
    "check_gguf",
]
