"""Bridges from other Redis primitives into streams (pub/sub today)."""
