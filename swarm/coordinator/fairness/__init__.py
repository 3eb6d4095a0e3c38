"""Fair queuing: priority classes, and within a class turns across tenants, weighted."""
