"""Scenario modules: `bench/scenarios/<name>.py` with `run(url, size) -> list[dict]`.

A dash in a scenario's command-line name is an underscore in its module name
(`delayed-memory` -> `delayed_memory.py`). Each row is one system measured.
"""
