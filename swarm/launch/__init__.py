"""Starts a swarm's processes on this machine (Redis, coordinators, workers): swarm up, benchmarks, tests."""
