"""Durable batch jobs: the Redis store, the runner that feeds lines to the queue, the service and its gRPC servicer."""
