"""Keys as tenants: who calls (Caller), the keys managed at run time, and the limits each key is held to."""
