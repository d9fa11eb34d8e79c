"""Benchmarks: gristmill next to the tools users would pick instead, on one server, in one run.

`python -m bench SCENARIO [--json] [--messages N]`; see bench/README.md for the method.
"""
