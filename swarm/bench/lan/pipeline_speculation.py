"""`python -m swarm.bench.lan.pipeline_speculation`: speculation off against on, a 2-stage pipeline on the emulated LAN.

Stage 0 runs on PC 0 with `--speculate on`, stage 1 on PC 1; Redis and the coordinator on PC 0,
the client (this process) outside the LAN. One stream at a time sends the re-emission prompt of
swarm/bench/speculation.py (a short module the answer repeats with one name changed), greedy; a
request's `speculate` field picks the arm, and the arms alternate round by round. A stream's rate
is its tokens after the first over the time from first token to last. Prints each round, the
medians and their ratio, the acceptance of proposals, how many greedy tokens the arms share, and
how far a speculating stream's token ever fell behind the whole model's greedy choice (llama.cpp
rounds a step of proposal rows differently from a one-row step: a near tie may go the other way).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np

from swarm.bench.lan.emulated_lan import EmulatedLan, add_lan_flags, lan_from_args
from swarm.bench.speculation import REEMIT_PROMPT, agreement
from swarm.client import AsyncSwarmClient
from swarm.gguf_files.default_model import cache_dir, resolve_model
from swarm.gguf_files.stage_files import cached_split
from swarm.launch.local_swarm import interrupt_on_stop_signals
from swarm.shared.types import Finished, TextPiece

ARMS = {False: "off", True: "on"}


@dataclass(frozen=True)
class Stream:
    rate: float  # tokens after the first per second from the first token to the last
    tokens: list[int]
    proposed: int
    accepted: int


async def one_stream(address: str, speculate: bool, max_tokens: int) -> Stream:
    async with AsyncSwarmClient(address, retries=0) as client:
        await client.status()  # connected first: the time is the swarm's, not a handshake's
        stamps: list[float] = []
        tokens: list[int] = []
        finished: Finished | None = None
        async for event in client.stream(REEMIT_PROMPT, max_tokens=max_tokens, temperature=0.0, speculate=speculate):
            if isinstance(event, TextPiece):
                now = time.perf_counter()
                stamps.extend([now] * max(1, len(event.token_ids)))
                tokens.extend(event.token_ids)
            elif isinstance(event, Finished):
                finished = event
    if finished is None or len(stamps) < 2:
        raise RuntimeError("the stream ended without tokens to time")
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return Stream(rate, tokens, finished.proposed_tokens, finished.accepted_tokens)


def measure(address: str, rounds: int, max_tokens: int) -> dict[bool, list[Stream]]:
    asyncio.run(one_stream(address, False, 8))  # warm the links, channels and the prompt's cache
    arms: dict[bool, list[Stream]] = {False: [], True: []}
    for n in range(rounds):
        for speculate in (False, True) if n % 2 == 0 else (True, False):
            stream = asyncio.run(one_stream(address, speculate, max_tokens))
            arms[speculate].append(stream)
            acceptance = f", accepted {stream.accepted}/{stream.proposed}" if speculate else ""
            print(f"  round {n} {ARMS[speculate]:3}: {stream.rate:.1f} tok/s{acceptance}", flush=True)
            time.sleep(0.3)
    return arms


def worst_margin(model: Path, outputs: list[list[int]]) -> float:
    """How far any token of the outputs falls behind the whole model's greedy choice at its position, each output
    fed to llama.cpp after the prompt (0: every token is the argmax given the tokens before it)."""
    llm = llama_cpp.Llama(str(model), n_ctx=1024, n_threads=2, logits_all=True, verbose=False)
    try:
        prompt = llm.tokenize(REEMIT_PROMPT.encode(), add_bos=True, special=True)
        worst = 0.0
        for output in outputs:
            llm.reset()  # type: ignore[no-untyped-call]
            llm.eval([*prompt, *output])
            scores = np.asarray(llm.scores[len(prompt) - 1 : len(prompt) - 1 + len(output)])
            worst = max(worst, max(float(row.max() - row[token]) for row, token in zip(scores, output, strict=True)))
        return worst
    finally:
        llm.close()


def report(arms: dict[bool, list[Stream]], model: Path, lan: EmulatedLan, args: argparse.Namespace) -> str:
    off = statistics.median(s.rate for s in arms[False])
    on = statistics.median(s.rate for s in arms[True])
    each = ", ".join(f"{b.rate / a.rate:.2f}" for a, b in zip(arms[False], arms[True], strict=True))
    proposed = sum(s.proposed for s in arms[True])
    accepted = sum(s.accepted for s in arms[True])
    same, total = agreement([s.tokens for s in arms[False]], [s.tokens for s in arms[True]])
    margin = worst_margin(model, [s.tokens for s in arms[True]])
    pcs = ", ".join(f"PC {i}: core {','.join(map(str, sorted(cores)))}" for i, cores in enumerate(lan.pcs))
    return "\n".join(
        [
            f"model {model.name}; 2 stages, {pcs}; links {args.delay_ms:g} ms one-way, {args.gbps:g} Gbit/s "
            f"(user-space relays); {args.threads} thread(s) per stage; re-emission prompt, 1 stream, "
            f"{args.max_tokens} tokens, greedy; median of {args.rounds}, arms alternating",
            "",
            "| figure | speculation off | on | on / off | each round (on / off) |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| decode tok/s | {off:.1f} | {on:.1f} | {on / off:.2f}x | {each} |",
            "",
            f"accepted {accepted}/{proposed} proposed tokens; greedy tokens identical {same}/{total} "
            f"({same / max(total, 1):.1%}); speculating, a token fell at most {margin:.4g} behind the whole "
            "model's greedy choice given the tokens before it (a near tie taken the other way: the arms differ "
            "from there on)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_lan_flags(parser)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    interrupt_on_stop_signals()
    with tempfile.TemporaryDirectory(prefix="swarm-lan-") as scratch:
        lan = lan_from_args(args, Path(scratch))
        try:
            lan.start_coordinator(Path(scratch))
            stage_files = cached_split(model, 2, cache_dir() / "stages")
            worker_args = ("--threads", str(args.threads), "--slots", "1", "--context", "1024", "--speculate", "on")
            lan.start_pipeline(stage_files, *worker_args, pcs=[0, 1])
            lan.wait_for_workers(2, "both stages")
            print(f"threads {args.threads} per stage, greedy, max_tokens {args.max_tokens}, rounds {args.rounds}")
            arms = measure(lan.coordinator, args.rounds, args.max_tokens)
        finally:
            lan.stop()
    table = report(arms, model, lan, args)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
