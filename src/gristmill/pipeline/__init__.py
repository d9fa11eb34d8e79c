"""The happy path, in order: consume -> decode -> handle -> encode -> publish (commit)."""
