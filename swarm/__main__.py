"""Lets `python -m swarm` run the CLI, e.g. where the console script is not on PATH."""

from swarm.cli.main import main

raise SystemExit(main())
