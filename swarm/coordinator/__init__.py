"""The coordinator: takes requests, keeps the registry and queue in Redis, routes work."""
