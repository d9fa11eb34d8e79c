"""Failures: the retry policy (pure), the dead-letter record format, and their reasons."""
