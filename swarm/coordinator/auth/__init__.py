"""Client authentication: API keys, the gRPC interceptor that checks them, and the HTTP check."""
