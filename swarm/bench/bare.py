"""The baselines: llama.cpp driven directly from Python, with no server, scheduler or thread around it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from swarm.engine.llama_adapter import LlamaContext, LlamaModel, Sampler, TokenBatch
from swarm.shared.types import SamplingParams


@dataclass(frozen=True)
class DecodeRun:
    """One measured generation: time to first token and the decode rate after it."""

    streams: int
    first_token_s: float  # prefill (all prompts) + first sample
    decode_tokens_per_s: float  # aggregate over all streams, first token excluded


def llama_cpp_python_single(model_path: Path, prompt: str, max_tokens: int, threads: int) -> DecodeRun:
    """The high-level `llama_cpp.Llama` streaming a greedy completion: what a user would run by hand."""
    llm = llama_cpp.Llama(str(model_path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    try:
        # A new context builds its compute graph on its first decode: done before timing, as a loaded model has.
        for _ in llm.create_completion("Warm up.", max_tokens=1, temperature=0.0):
            pass
        start = time.perf_counter()
        stamps = []
        for _ in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stream=True):
            stamps.append(time.perf_counter())
    finally:
        llm.close()
    return DecodeRun(1, stamps[0] - start, (len(stamps) - 1) / (stamps[-1] - stamps[0]))


def batched_decode(model: LlamaModel, prompts: list[str], max_tokens: int, threads: int) -> DecodeRun:
    """B sequences advanced by one llama_decode per step: the bare form of continuous batching."""
    streams = len(prompts)
    context = LlamaContext(model, streams, 512, 512, threads)
    batch = TokenBatch(context.batch_size)
    samplers = [Sampler(SamplingParams(temperature=0.0), [], model) for _ in prompts]
    try:
        # A new context builds its compute graph on the first decode: do that before timing,
        # as a long-running worker has long done it.
        batch.add(model.tokenize(prompts[0])[0], 0, 0, True)
        context.decode(batch)
        context.forget(0)
        start = time.perf_counter()
        tokens = [model.tokenize(p) for p in prompts]
        positions = [len(t) for t in tokens]
        for seq, seq_tokens in enumerate(tokens):  # prefill each prompt, one decode each
            batch.clear()
            for pos, token in enumerate(seq_tokens):
                batch.add(token, pos, seq, pos == len(seq_tokens) - 1)
            context.decode(batch)
            tokens[seq] = [samplers[seq].sample(context, batch.size - 1)]
        first = time.perf_counter()
        for _ in range(max_tokens - 1):
            batch.clear()
            for seq in range(streams):
                batch.add(tokens[seq][-1], positions[seq], seq, True)
                positions[seq] += 1
            context.decode(batch)
            for seq in range(streams):
                tokens[seq].append(samplers[seq].sample(context, seq))
        end = time.perf_counter()
    finally:
        for sampler in samplers:
            sampler.close()
        batch.close()
        context.close()
    return DecodeRun(streams, first - start, streams * (max_tokens - 1) / (end - first))
