"""Usage accounting: tokens per tenant, model and worker, workers' busy time, and what a million tokens cost."""
