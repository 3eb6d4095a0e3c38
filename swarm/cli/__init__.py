"""The `swarm` command line: it only builds config objects and calls the roles' entry points."""
