"""The coordinator's live dashboard: a page at / fed by server-sent snapshots of the swarm at /events."""
