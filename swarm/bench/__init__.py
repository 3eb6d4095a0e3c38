"""Benchmarks: the engine against bare llama-cpp-python, and the coordinator's relay capacity."""
