"""The `swarm` command line: each command builds its config from flags and calls the package that does the work."""
