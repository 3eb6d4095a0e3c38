"""Profiling the coordinator under load: py-spy sampling, and summaries of py-spy and cProfile output."""

from __future__ import annotations

import io
import logging
import pstats
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)

TOP_FUNCTIONS = 25


def find_py_spy() -> str | None:
    """The py-spy beside this interpreter, else the one on PATH, else None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class PySpy:
    """Samples one process with py-spy while a step runs; the collapsed stacks go to a file."""

    def __init__(self, binary: str, pid: int, out: Path, native: bool) -> None:
        argv = [binary, "record", "--pid", str(pid), "--format", "raw", "--threads", "--rate", "100", "-o", str(out)]
        argv += ["--native"] if native else ["--nonblocking"]
        self.out = out
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            _, stderr = self._process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, stderr = self._process.communicate(timeout=10)
        if not self.out.exists():
            log.warning("py-spy wrote no profile: %s", (stderr or "").strip()[-500:])


def _frame_name(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (to/file.py)': one entry per function, whatever the line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(Path(path).parts[-2:]) if path else ""
    return f"{name} ({short})" if short else name


def summarize_collapsed(path: Path, top: int = TOP_FUNCTIONS) -> str:
    """Top functions by own and by cumulative samples from py-spy's collapsed ('raw') output."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread (", "process ")):
            threads[frames[0]] += count
            frames = frames[1:]
        names = [_frame_name(f) for f in frames]
        total += count
        if names:
            own[names[-1]] += count
        for name in set(names):
            cumulative[name] += count
    if total == 0:
        return "(no samples)"
    lines = [f"{total} samples ({total / 100:.1f} CPU-seconds at 100 Hz, idle time not sampled)", ""]
    lines += ["| thread | % of samples |", "| --- | ---: |"]
    lines += [f"| {name} | {100 * n / total:.1f} |" for name, n in threads.most_common()]
    for title, counter in (("own", own), ("cumulative", cumulative)):
        lines += ["", f"Top {top} by {title} samples:", "", f"| % {title} | function |", "| ---: | --- |"]
        lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in counter.most_common(top)]
    return "\n".join(lines)


def summarize_cprofile(path: Path, top: int = TOP_FUNCTIONS) -> str:
    """Top functions by own and by cumulative time from a cProfile dump."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    for key in ("tottime", "cumulative"):
        out.write(f"\nTop {top} by {key}:\n")
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()
