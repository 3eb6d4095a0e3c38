"""Each command imports only what it uses: no llama.cpp or benchmarks in the coordinator or client commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from swarm.cli.main import chosen_command

HEAVY = ("llama_cpp", "swarm.bench", "swarm.engine")

# Each runs in a fresh interpreter, then prints the heavy modules it imported.
PROGRAMS = {
    "coordinator --help": (
        "import contextlib\n"
        "from swarm.cli.main import main\n"
        "with contextlib.suppress(SystemExit):\n"
        "    main(['coordinator', '--help'])\n"
    ),
    "coordinator, parsed to its run function": (
        "from swarm.cli.main import build_parser\n"
        "argv = ['--log-level', 'warning', 'coordinator', '--listen', '127.0.0.1:0']\n"
        "args = build_parser(argv).parse_args(argv)\n"
        "assert args.run.__module__ == 'swarm.cli.coordinator_command'\n"
    ),
    "the coordinator process": "import swarm.coordinator.process\n",
    "status": (
        "from swarm.cli.main import build_parser\n"
        "argv = ['status', '--json']\n"
        "assert build_parser(argv).parse_args(argv).run.__name__ == 'run_status'\n"
    ),
    "generate": (
        "from swarm.cli.main import build_parser\n"
        "argv = ['generate', 'hi']\n"
        "assert build_parser(argv).parse_args(argv).run.__name__ == 'run_generate'\n"
    ),
}

REPORT = (
    f"\nimport sys\nprint(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in {HEAVY!r})))\n"
)


@pytest.mark.parametrize("what", sorted(PROGRAMS))
def test_imports_no_llama_cpp_nor_benchmarks(what: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAMS[what] + REPORT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_full_parser_still_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "swarm", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in ("coordinator", "join", "up", "generate", "status", "batch", "split", "certs", "bench", "ray"):
        assert command in result.stdout


def test_an_unknown_command_is_refused_with_the_list_of_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "swarm", "serve"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "invalid choice: 'serve'" in result.stderr and "coordinator" in result.stderr


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["--log-level", "debug", "up", "--model", "x"], "up"),
        (["status", "--json"], "status"),
        (["--log-level=warning", "batch", "list"], "batch"),
        (["-h"], None),
        (["--log-level"], None),  # the full parser says what is wrong
        (["--log-level", "loud", "up"], None),
        (["serve"], None),
        ([], None),
    ],
)
def test_the_command_is_found_before_any_module_is_imported(argv: list[str], command: str | None) -> None:
    assert chosen_command(argv) == command
