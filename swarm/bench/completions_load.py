"""Drives any OpenAI-compatible server with N concurrent non-streaming /v1/completions and times them.

One client for every server under test (the swarm's coordinator, llama.cpp's llama-server), so
neither gets a client the other does not: stdlib http.client, one thread and one connection
per request, all released together.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any


class CompletionFailed(RuntimeError):
    """The server answered a completion with an error, or with a body that is not one."""


@dataclass(frozen=True)
class CompletionBody:
    """The request every arm gets: greedy, a fixed length, nothing server-specific."""

    prompt: str
    max_tokens: int
    extra: tuple[tuple[str, Any], ...] = ()  # further fields, the same for every arm

    def json(self) -> bytes:
        fields = {"prompt": self.prompt, "max_tokens": self.max_tokens, "temperature": 0.0, **dict(self.extra)}
        return json.dumps(fields).encode()


@dataclass(frozen=True)
class Completion:
    sent: float
    done: float
    completion_tokens: int

    @property
    def seconds(self) -> float:
        return self.done - self.sent


@dataclass(frozen=True)
class LoadRun:
    """One round: `streams` requests sent at once, timed from the first send to the last answer."""

    streams: int
    tokens_per_s: float  # every answer's completion tokens over the round's wall time
    completion_tokens: int  # summed over the round's answers
    latency_p50_s: float


def summarize(completions: list[Completion]) -> LoadRun:
    if not completions:
        raise ValueError("no completions to summarize")
    wall = max(c.done for c in completions) - min(c.sent for c in completions)
    tokens = sum(c.completion_tokens for c in completions)
    return LoadRun(
        streams=len(completions),
        tokens_per_s=tokens / wall if wall > 0 else 0.0,
        completion_tokens=tokens,
        latency_p50_s=statistics.median(c.seconds for c in completions),
    )


def complete(host: str, port: int, body: CompletionBody, timeout_s: float = 300.0) -> Completion:
    """One POST /v1/completions on a fresh connection; the answer's usage says how many tokens it made."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        sent = time.perf_counter()
        connection.request("POST", "/v1/completions", body.json(), {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        done = time.perf_counter()
    finally:
        connection.close()
    if response.status != 200:
        raise CompletionFailed(f"{host}:{port} answered {response.status}: {data[:300]!r}")
    try:
        tokens = int(json.loads(data)["usage"]["completion_tokens"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CompletionFailed(f"{host}:{port} answered without usage.completion_tokens: {data[:300]!r}") from exc
    return Completion(sent, done, tokens)


def measure_completions(host: str, port: int, bodies: list[CompletionBody], timeout_s: float = 300.0) -> LoadRun:
    """Sends every body at once, one thread each, and summarizes the round; the first failure is raised."""
    results: list[Completion | BaseException | None] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def one(index: int) -> None:
        try:
            start.wait(timeout_s)
            results[index] = complete(host, port, bodies[index], timeout_s)
        except BaseException as exc:  # handed to the caller's thread, which raises it
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,), name=f"completion-{i}") for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    completions = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        if result is None:
            raise CompletionFailed("a completion thread ended without a result")
        completions.append(result)
    return summarize(completions)
