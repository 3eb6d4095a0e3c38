"""Refreshing terminal views for `swarm status --watch` and `swarm top`: frames redrawn in place until Ctrl-C."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TextIO

from swarm.client import SwarmCallError, SwarmClient
from swarm.shared.types import SwarmStatus

CLEAR_SCREEN = "\x1b[H\x1b[2J"  # cursor home, then erase the screen: the next frame replaces the last


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return seconds


def add_refresh_flags(parser: argparse.ArgumentParser, default_interval_s: float) -> None:
    parser.add_argument(
        "--interval",
        type=positive_seconds,
        default=default_interval_s,
        metavar="SECONDS",
        help="seconds between refreshes (default %(default)s)",
    )
    parser.add_argument(
        "--count", type=int, default=0, metavar="N", help="stop after N refreshes (default: until Ctrl-C)"
    )


def watch(render: Callable[[], str], interval_s: float, count: int, out: TextIO) -> int:
    """Shows render()'s frame every interval_s, in place on a terminal, one after another otherwise.

    Stops after `count` frames (0: never) or on Ctrl-C, which is a normal way to leave: exit code 0.
    """
    in_place = out.isatty()
    shown = 0
    try:
        while True:
            frame = render()
            out.write(f"{CLEAR_SCREEN}{frame}\n" if in_place else f"{frame}\n\n")
            out.flush()
            shown += 1
            if count and shown >= count:
                return 0
            time.sleep(interval_s)
    except KeyboardInterrupt:
        out.write("\n")
        return 0


def status_frames(client: SwarmClient, table: Callable[[SwarmStatus], str]) -> Callable[[], str]:
    """A frame renderer that asks the coordinator for its status each time; a failed call shows as the frame."""

    def render() -> str:
        stamp = time.strftime("%H:%M:%S")
        try:
            return f"{table(client.status())}\n(at {stamp}; Ctrl-C to stop)"
        except SwarmCallError as exc:
            return (
                f"cannot reach coordinator {','.join(client.addresses)}: {exc}\n(at {stamp}; retrying; Ctrl-C to stop)"
            )

    return render


def _human_bytes(count: int) -> str:
    if count <= 0:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def top_table(status: SwarmStatus) -> str:
    """The workers busiest first (slots busy, then tokens per second), under a one-line summary of the swarm."""
    workers = sorted(status.workers, key=lambda w: (-w.load.slots_busy, -w.load.tokens_per_second, w.info.worker_id))
    header = ("WORKER", "HOST", "MODEL", "SERVES", "STATE", "SLOTS", "BUSY", "TOK/S", "RSS", "HEARTBEAT")
    rows = [header] + [
        (
            w.info.worker_id,
            w.info.hostname or w.info.address,
            w.info.model,
            w.info.role,
            w.shown_state,
            f"{w.load.slots_busy}/{w.info.slots}",
            f"{100 * w.load.slots_busy / w.info.slots:.0f}%" if w.info.slots else "-",
            f"{w.load.tokens_per_second:.1f}",
            _human_bytes(w.load.rss_bytes),
            f"{w.heartbeat_age_s:.1f}s ago" if w.heartbeat_age_s >= 0 else "never",
        )
        for w in workers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    up = [w for w in status.workers if w.up]
    summary = (
        f"swarm top: {len(up)} of {len(status.workers)} workers up, "
        f"{sum(w.load.slots_busy for w in up)}/{sum(w.info.slots for w in up)} slots busy, "
        f"{sum(w.load.tokens_per_second for w in up):.1f} tok/s, {status.queue_depth} queued"
    )
    lines = [summary, ""]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)
