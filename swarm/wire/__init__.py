"""The wire: protobuf stubs generated from proto/swarm.proto, and conversions to in-process types."""
