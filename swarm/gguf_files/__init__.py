"""GGUF files as files, no llama.cpp: the stage splitter, model shapes, the default model, synthetic models."""
