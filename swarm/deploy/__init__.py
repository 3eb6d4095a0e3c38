"""Running swarm on fleets: workers as Ray actors (units, containers and Ansible are in deploy/ and ansible/)."""
