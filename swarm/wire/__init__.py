"""The wire: protobuf stubs from proto/swarm.proto, conversions to in-process types, the gRPC error boundary."""
