"""Decode rate under a JSON-schema grammar against the same requests unconstrained, side by side in one run.

Both arms run the same prompts through one BatchEngine (the worker's engine, no network), greedy or not, with
S streams at once; the arms alternate round by round and a round's rate is the sum of its streams'
own rates (tokens after the first over the time from first token to finish). Prints each round,
the medians and their ratio.

    python -m swarm.bench.grammar_decode --streams 1 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from swarm.bench.engine_rounds import Round, run_requests
from swarm.engine.batch_engine import BatchEngine, EngineConfig
from swarm.engine.llama_adapter import LlamaModel
from swarm.gguf_files.default_model import default_model_path
from swarm.shared.json_schema_grammar import schema_grammar
from swarm.shared.types import GenerationRequest, SamplingParams

PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "city": {"type": "string", "maxLength": 40},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 5},
        "employed": {"type": "boolean"},
    },
    "required": ["name", "age", "city", "hobbies", "employed"],
}
PROMPT = (
    "<start_of_turn>user\nDescribe a fictional person as a JSON object with the fields name, age, city, "
    "hobbies (a list) and employed (true or false). Answer with JSON only.<end_of_turn>\n<start_of_turn>model\n"
)


def run_round(
    engine: BatchEngine, streams: int, grammar: str, max_tokens: int, tag: str, temperature: float = 0.0
) -> Round:
    """streams requests at once, each seeded by its index (engine_rounds times them)."""
    requests = [
        GenerationRequest(
            f"{tag}-{i}", "bench", PROMPT, max_tokens, SamplingParams(temperature=temperature, seed=i, grammar=grammar)
        )
        for i in range(streams)
    ]
    return run_requests(engine, requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm.bench.grammar_decode", description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy (each stream seeded by its index)")
    args = parser.parse_args(argv)
    model = LlamaModel(args.model or default_model_path(progress=False))
    engine = BatchEngine(model, EngineConfig(slots=max(args.streams, 1), context_per_slot=512, threads=args.threads))
    engine.start()
    grammar = schema_grammar(PERSON_SCHEMA, "schema")
    try:
        run_round(engine, 1, "", 4, "warm")
        arms: dict[str, list[Round]] = {"free": [], "schema": []}
        for n in range(args.rounds):
            for arm, arm_grammar in (("free", ""), ("schema", grammar)):
                measured = run_round(engine, args.streams, arm_grammar, args.max_tokens, f"{arm}{n}", args.temperature)
                arms[arm].append(measured)
                rate = f"{measured.tokens} tokens in {measured.seconds:.2f} s = {measured.rate:.1f} tok/s"
                print(f"round {n} {arm:6}: {rate}")
        free = statistics.median(r.rate for r in arms["free"])
        constrained = statistics.median(r.rate for r in arms["schema"])
        print(
            f"streams {args.streams}, threads {args.threads}, temperature {args.temperature}: "
            f"median unconstrained {free:.1f} tok/s, "
            f"schema {constrained:.1f} tok/s, ratio {constrained / free:.2f}"
        )
    finally:
        engine.stop()
        model.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
