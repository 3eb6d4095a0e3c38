"""Stage planning: the pure planner, the assigner applying it to offers, the plan in Redis, stage file serving."""
