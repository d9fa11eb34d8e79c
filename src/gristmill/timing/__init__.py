"""Time-driven delivery: the delayed store, its sweeper, and the leader lease that elects it."""
