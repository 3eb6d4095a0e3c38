"""Embedding throughput: /v1/embeddings of a real swarm against llama-cpp-python's embed, side by side in one run.

Both arms embed the same inputs (32 texts of 30-45 words, by default) with the same threads, context and
batch size, and OpenMP spin: the swarm's worker packs them into its embedding context's decodes (32
inputs each), llama-cpp-python's Llama(embedding=True).embed does the same in-process (all 32 in one
decode). The swarm's arm pays for the HTTP request, the coordinator and the gRPC hop to the worker on
top. Rounds alternate the arms; each prints tokens/s, then the medians and their ratio (swarm /
llama-cpp-python).

    python -m swarm.bench.embeddings --inputs 32 --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from swarm.bench.engine_vs_bare import start_swarm
from swarm.engine.embedder import Embedder
from swarm.gguf_files.default_model import default_model_path
from swarm.launch.local_swarm import LocalSwarm, free_port

SENTENCE = (
    "swarm workers embed many texts in one decode while the coordinator routes each request to a worker "
    "of its model that has room and tries another when one fails the vectors are pooled as the model says"
)


def texts(count: int) -> list[str]:
    """Different texts of 30 to 45 words."""
    words = SENTENCE.split(" ")
    return [" ".join(words[(i * 7 + k) % len(words)] for k in range(30 + i % 16)) for i in range(count)]


def swarm_round(http: str, inputs: list[str]) -> tuple[int, float]:
    """Tokens embedded and seconds for one /v1/embeddings call of all inputs."""
    body = json.dumps({"input": inputs}).encode()
    request = urllib.request.Request(f"http://{http}/v1/embeddings", body, {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.loads(response.read())
    return int(answer["usage"]["prompt_tokens"]), time.perf_counter() - started


def llama_cpp_python(model: Path, threads: int) -> Any:
    """llama-cpp-python's Llama set up as the worker's embedding context: mean pooling (what the swarm uses for
    a causal LM), the same context, batch and threads. Imported here, after swarm.engine gave this process
    the worker's OpenMP spin (libgomp reads it when llama.cpp loads), so both arms wait at barriers alike."""
    import llama_cpp

    return llama_cpp.Llama(
        str(model),
        embedding=True,  # llama-cpp-python then unifies the cache and takes up to 256 inputs per decode
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        n_ctx=Embedder.CONTEXT_TOKENS,
        n_batch=Embedder.CONTEXT_TOKENS,
        n_ubatch=Embedder.CONTEXT_TOKENS,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )


def llama_round(llm: Any, inputs: list[str]) -> tuple[int, float]:
    started = time.perf_counter()
    _, tokens = llm.embed(inputs, normalize=True, return_count=True)
    return int(tokens), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm.bench.embeddings", description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--inputs", type=int, default=32, help="texts per request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    model = args.model or default_model_path(progress=False)
    inputs = texts(args.inputs)
    llm = llama_cpp_python(model, args.threads)
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as scratch:
        swarm = LocalSwarm(log_dir=Path(scratch))
        http = f"127.0.0.1:{free_port()}"
        try:
            start_swarm(swarm, Path(scratch), model, args.threads, 1, http=http)
            swarm_round(http, inputs[:2])  # opens the worker's embedding context
            llama_round(llm, inputs[:2])
            rates: dict[str, list[float]] = {"swarm": [], "llama-cpp-python": []}
            for n in range(args.rounds):
                for arm in rates:
                    tokens, seconds = swarm_round(http, inputs) if arm == "swarm" else llama_round(llm, inputs)
                    rates[arm].append(tokens / seconds)
                    print(f"round {n} {arm:16}: {tokens} tokens in {seconds:.3f} s = {tokens / seconds:.0f} tok/s")
        finally:
            swarm.stop()
            llm.close()
    ours, theirs = statistics.median(rates["swarm"]), statistics.median(rates["llama-cpp-python"])
    print(
        f"{args.inputs} inputs, threads {args.threads}: median swarm {ours:.0f} tok/s, "
        f"llama-cpp-python {theirs:.0f} tok/s, ratio {ours / theirs:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
