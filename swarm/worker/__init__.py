"""The worker: serves one model with llama.cpp, joins a coordinator and heartbeats to it."""
