"""swarm.engine's OpenMP defaults: set before llama.cpp loads, and an operator's own setting wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(30)

PROBE = "import os, swarm.engine as e; print(os.environ['GOMP_SPINCOUNT'], ','.join(e.OPENMP_SET_BY_SWARM))"


def probe(env: dict[str, str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_swarm_sets_a_short_spin_when_the_operator_set_none() -> None:
    from swarm.engine import OPENMP_DEFAULTS

    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert probe(env) == [OPENMP_DEFAULTS["GOMP_SPINCOUNT"], "GOMP_SPINCOUNT"]


def test_an_operator_s_own_spin_count_wins_and_is_not_counted_as_swarm_s() -> None:
    assert probe({**os.environ, "GOMP_SPINCOUNT": "1234"}) == ["1234"]
