"""Who runs each request: leases renewed in Redis, takeover of a dead peer's requests, following a live peer's."""
