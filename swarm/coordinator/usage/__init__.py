"""Usage accounting: tokens per tenant, model and worker, and workers' busy time, in Redis."""
