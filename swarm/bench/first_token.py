"""`swarm bench-first-token`: time to first token through the gRPC API at one stream against bare
llama-cpp-python on the same prompts and threads, side by side in one run, and (--breakdown) where the
swarm's milliseconds go, hop by hop, from its own OpenTelemetry spans."""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
from opentelemetry.sdk.trace import TracerProvider

from swarm.bench.span_receiver import ReceivedSpan, SpanReceiver
from swarm.bench.swarm_load import wait_for_a_worker
from swarm.bench.traced_request import TracedRequest
from swarm.client import SwarmClient
from swarm.engine.llama_adapter import LlamaContext, LlamaModel, Sampler, TokenBatch
from swarm.gguf_files.default_model import resolve_model
from swarm.launch.local_swarm import LocalSwarm, free_port, interrupt_on_stop_signals, wait_until
from swarm.shared.types import SamplingParams, TextPiece

log = logging.getLogger(__name__)

# Short prompts, none a prefix of another, so neither side's prefix cache helps it. Each request numbers its
# prompt ("0.3 The fastest ...") so no prompt repeats; both bare arms then keep only the previous prompt's
# first token (BOS) cached, as the swarm's slot does (its previous prompt is the other swarm arm's):
# llama-cpp-python would otherwise reuse "<BOS>0." of the previous numbered prompt, 3 tokens to the
# swarm's 1, and on 2 cores each token of a short prompt's prefill costs about 4 ms.
PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of",
    "The largest planet in the solar system is",
    "A haiku about autumn leaves:",
    "The chemical symbol for gold is",
    "Shakespeare wrote the play",
    "In computer science, a linked list is",
    "The fastest land animal is",
    "To make a cup of tea, you",
    "Mount Everest is located in",
    "The inventor of the telephone was",
    "Light travels at a speed of",
    "An octopus has three hearts and",
    "The first person to walk on the moon",
    "Honey never spoils because",
]
CONTEXT = 1024  # the worker's per-slot context; the bare Llama gets the same
# Each arm starts on an idle machine: the last arm's request has ended (the swarm's after its second token),
# but its OpenMP threads still spin and its coordinator still files the result for a millisecond or two.
SETTLE_S = 0.05

# (label, from, to): each a (span name, "start" | "end"), or "client" for the client's own stamps.
Stamp = tuple[str, str]
HOPS: list[tuple[str, Stamp, Stamp]] = [
    ("client -> coordinator (channel, HTTP/2, servicer)", ("client", "sent"), ("coordinator.Generate", "start")),
    ("admission (validate, model, queue depth)", ("coordinator.Generate", "start"), ("redis.enqueue", "start")),
    ("Redis enqueue (MULTI, WAIT)", ("redis.enqueue", "start"), ("redis.enqueue", "end")),
    ("dispatcher wake-up, plan, Redis claim", ("redis.enqueue", "end"), ("coordinator.dispatch", "start")),
    ("Run call coordinator -> worker", ("coordinator.dispatch", "start"), ("worker.Run", "start")),
    ("worker: checks, submit", ("worker.Run", "start"), ("worker.wait_for_slot", "start")),
    (
        "worker: engine thread wakes, tokenizes, takes a slot",
        ("worker.wait_for_slot", "start"),
        ("worker.wait_for_slot", "end"),
    ),
    (
        "worker: prefill, first sample",
        ("worker.prefill_to_first_token", "start"),
        ("worker.prefill_to_first_token", "end"),
    ),
    (
        "first piece worker -> coordinator",
        ("worker.prefill_to_first_token", "end"),
        ("redis.save_first_piece", "start"),
    ),
    ("first piece saved in Redis", ("redis.save_first_piece", "start"), ("redis.save_first_piece", "end")),
    ("coordinator -> client", ("redis.save_first_piece", "end"), ("client", "first")),
]


def add_parsers(commands: Any) -> None:
    p = commands.add_parser(
        "bench-first-token", help="time to first token through the swarm against bare llama-cpp-python, one stream"
    )
    p.add_argument("--model", default="default", help="GGUF path or 'default' (Gemma 3 270M)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="passes over the prompts; each prompt once per pass")
    p.add_argument(
        "--breakdown", action="store_true", help="trace the swarm (OTLP to a receiver here) and time each hop"
    )
    p.add_argument(
        "--first-token-pause-ms", type=float, default=None, help="the worker's (default: swarm join's own default)"
    )
    p.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
    p.set_defaults(run=run_first_token)


def run_first_token(args: argparse.Namespace) -> int:
    model_path = resolve_model(args.model)
    interrupt_on_stop_signals()
    receiver = SpanReceiver() if args.breakdown else None
    with tempfile.TemporaryDirectory(prefix="swarm-ttft-") as scratch:
        swarm = LocalSwarm(log_dir=Path(scratch))
        try:
            pause = (
                [] if args.first_token_pause_ms is None else ["--first-token-pause-ms", str(args.first_token_pause_ms)]
            )
            address = start_swarm(swarm, Path(scratch), model_path, args.threads, receiver, *pause)
            measured = measure(address, model_path, args.threads, args.rounds)
        finally:
            swarm.stop()  # each process exports its last spans on the way out
    lines = report_lines(measured, model_path, args)
    if receiver is not None:
        lines += breakdown_lines(receiver, measured.swarm)
        receiver.close()
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


def start_swarm(
    swarm: LocalSwarm, scratch: Path, model: Path, threads: int, receiver: SpanReceiver | None, *worker_args: str
) -> str:
    tracing = ["--otlp-endpoint", receiver.endpoint] if receiver is not None else []
    swarm.start_redis(scratch / "redis")
    address = f"127.0.0.1:{free_port()}"
    swarm.start_coordinator(address, "", *tracing)
    swarm.start_worker(
        address, model, "--threads", str(threads), "--slots", "1", "--context", str(CONTEXT), *tracing, *worker_args
    )

    wait_for_a_worker(address)
    return address


def bare_first_token_ms(llm: llama_cpp.Llama, prompt: str) -> float:
    """llama-cpp-python's own streaming completion: tokenize, prefill, first sample, first chunk."""
    llm.n_tokens = min(llm.n_tokens, 1)  # only BOS reused, as the swarm's slot reuses (see PROMPTS)
    start = time.perf_counter()
    for _ in llm.create_completion(prompt, max_tokens=1, temperature=0.0, stream=True):
        return (time.perf_counter() - start) * 1000
    raise RuntimeError("llama-cpp-python streamed nothing")


class LowLevelPrefill:
    """llama.cpp with no Python around it but the swarm's own adapter: tokenize, one llama_decode, greedy sample.

    The floor under both other arms: what a worker's engine does for a first token, without the engine.
    """

    def __init__(self, model: Path, threads: int) -> None:
        self._model = LlamaModel(model)
        self._context = LlamaContext(self._model, 1, CONTEXT, 512, threads)
        self._batch = TokenBatch(self._context.batch_size)

    def first_token_ms(self, prompt: str) -> float:
        start = time.perf_counter()
        tokens = self._model.tokenize(prompt)
        kept = min(self._context.positions(0), 1)  # BOS, cached by the previous prompt (see PROMPTS)
        self._context.forget(0, kept)
        self._batch.clear()
        for position in range(kept, len(tokens)):
            self._batch.add(tokens[position], position, 0, position == len(tokens) - 1)
        self._context.decode(self._batch)
        sampler = Sampler(SamplingParams(temperature=0.0), [], self._model)
        try:
            sampler.sample(self._context, self._batch.size - 1)
        finally:
            sampler.close()
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        self._batch.close()
        self._context.close()
        self._model.close()


def swarm_first_token(client: SwarmClient, tracer: Any, prompt: str) -> TracedRequest:
    """The client's own span gives the request a trace id to find the swarm's spans by."""
    with tracer.start_as_current_span("client.request") as span:
        sent = time.time_ns()
        first = 0
        for event in client.stream(prompt, max_tokens=2, temperature=0.0):
            if isinstance(event, TextPiece) and not first:
                first = time.time_ns()
    return TracedRequest(format(span.get_span_context().trace_id, "032x"), sent, first)


@dataclass(frozen=True)
class Measured:
    bare_ms: list[float]
    low_level_ms: list[float]
    swarm: list[TracedRequest]  # one long-lived client, as an application holds
    new_client_ms: list[float]  # a client connected for each request, as `swarm generate` is


def measure(address: str, model: Path, threads: int, rounds: int) -> Measured:
    llm = llama_cpp.Llama(str(model), n_ctx=CONTEXT, n_threads=threads, n_threads_batch=threads, verbose=False, seed=0)
    low_level = LowLevelPrefill(model, threads)
    tracer = TracerProvider().get_tracer("swarm-bench")  # records, exports nothing: ids for the swarm's spans
    bare: list[float] = []
    low: list[float] = []
    samples: list[TracedRequest] = []
    new_client: list[float] = []
    try:
        with SwarmClient(address, retries=0) as client:
            for prompt in PROMPTS[:3]:  # warm all: compute graphs, channels, the dispatcher's first wake-ups
                bare_first_token_ms(llm, "Warm up: " + prompt)
                low_level.first_token_ms("Warm up: " + prompt)
                swarm_first_token(client, tracer, "Warm up: " + prompt)
            for run in range(rounds):  # alternate, so machine drift hits every arm alike
                for i, prompt in enumerate(PROMPTS):
                    text = f"{run}.{i} {prompt}"
                    time.sleep(SETTLE_S)
                    bare.append(bare_first_token_ms(llm, text))
                    time.sleep(SETTLE_S)
                    low.append(low_level.first_token_ms(text))
                    time.sleep(SETTLE_S)
                    samples.append(swarm_first_token(client, tracer, text))
                    time.sleep(SETTLE_S)
                    with SwarmClient(address, retries=0) as fresh:
                        new_client.append(swarm_first_token(fresh, tracer, "New client, " + text).first_token_ms)
    finally:
        low_level.close()
        llm.close()
    return Measured(bare, low, samples, new_client)


def report_lines(measured: Measured, model: Path, args: argparse.Namespace) -> list[str]:
    swarm_ms = [s.first_token_ms for s in measured.swarm]
    b, low = statistics.median(measured.bare_ms), statistics.median(measured.low_level_ms)
    return [
        f"model {model.name}, {args.threads} threads, one worker with 1 slot, {len(PROMPTS)} short prompts x "
        f"{args.rounds} rounds, greedy, medians, one stream, the arms alternating, BOS alone reused by each"
        + (", swarm traced (OTLP)" if args.breakdown else ", tracing off"),
        "",
        "| time to first token | median ms | p10 ms | p90 ms | added (medians) | over low level |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {label} | {statistics.median(ms):.1f} | {quantile(ms, 0.1):.1f} | {quantile(ms, 0.9):.1f} | "
            f"{statistics.median(ms) - b:+.1f} | {statistics.median(ms) - low:+.1f} |"
            for label, ms in (
                ("bare llama-cpp-python (prefill, first sample)", measured.bare_ms),
                ("bare llama.cpp, low level (one llama_decode, greedy sample)", measured.low_level_ms),
                ("swarm, one connected gRPC client", swarm_ms),
                ("swarm, a new gRPC client per request", measured.new_client_ms),
            )
        ),
    ]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def breakdown_lines(receiver: SpanReceiver, samples: list[TracedRequest]) -> list[str]:
    """Per hop, the median and p95 over the requests whose spans all came (a busy process may drop some)."""
    names = {name for _, start, end in HOPS for name, _ in (start, end)} - {"client"}

    def traced(sample: TracedRequest) -> bool:
        return names <= receiver.spans(sample.trace_id).keys()

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: all(traced(s) for s in samples), 10, "every request's spans")
    complete = [s for s in samples if traced(s)]
    if not complete:
        return ["", f"no request of {len(samples)} had all its spans: no breakdown"]
    per_hop: dict[str, list[float]] = {label: [] for label, _, _ in HOPS}
    for sample in complete:
        spans = receiver.spans(sample.trace_id)
        stamp = _stamper(spans, sample)
        for label, start, end in HOPS:
            per_hop[label].append((stamp(end) - stamp(start)) / 1e6)
    lines = ["", f"| hop ({len(complete)} of {len(samples)} requests traced whole) | median ms | p95 ms |"]
    lines.append("| --- | ---: | ---: |")
    lines += [f"| {label} | {statistics.median(ms):.2f} | {quantile(ms, 0.95):.2f} |" for label, ms in per_hop.items()]
    sums = [sum(ms[i] for ms in per_hop.values()) for i in range(len(complete))]
    lines.append(f"| sum (= client TTFT) | {statistics.median(sums):.2f} | {quantile(sums, 0.95):.2f} |")
    return lines


def _stamper(spans: dict[str, ReceivedSpan], sample: TracedRequest) -> Callable[[Stamp], int]:
    def stamp(at: Stamp) -> int:
        name, edge = at
        if name == "client":
            return sample.sent_ns if edge == "sent" else sample.first_ns
        return spans[name].start_ns if edge == "start" else spans[name].end_ns

    return stamp
