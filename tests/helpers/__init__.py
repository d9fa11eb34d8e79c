"""Test-only helpers shared by many test modules (fault tooling, the checker)."""
