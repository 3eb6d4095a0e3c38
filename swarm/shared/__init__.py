"""Types and helpers shared by every role: in-process messages, addresses, defaults."""
