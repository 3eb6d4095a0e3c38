"""Benchmarks: the engine against bare llama-cpp-python, and the coordinator's relay capacity."""

# Bare llama-cpp-python runs in this process: with the workers' OpenMP wait policy (set by swarm.engine,
# before any benchmark module loads llama.cpp), so both sides of a comparison wait for cores alike.
import swarm.engine  # noqa: F401
