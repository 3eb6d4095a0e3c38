"""How every command reports a failure it understands: one line on stderr, exit status 2."""

from __future__ import annotations

import sys


def fail(command: str, message: str) -> int:
    print(f"swarm {command}: error: {message}", file=sys.stderr)
    return 2
