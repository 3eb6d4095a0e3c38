"""The grpc.aio floor benchmark: every message it counts was really written to and read by a client."""

from __future__ import annotations

import pytest

from swarm.bench.grpc_stream_floor import main, measure_floor

pytestmark = pytest.mark.timeout(60)


def test_the_floor_counts_every_message_of_every_stream_and_the_server_s_cpu() -> None:
    run = measure_floor(streams=5, tokens=20, rate=100.0)
    assert run.messages == 5 * 20
    assert run.seconds >= 20 / 100.0  # paced: 20 ticks at 100/s
    assert run.server_cpu_s > 0 and run.cpu_us_per_message > 0


def test_bad_flags_are_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--streams", "0"])
    assert "--streams" in capsys.readouterr().err
