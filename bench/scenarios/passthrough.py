"""Scenario `passthrough`: consume -> decode, transform, encode -> produce, ~100-byte payloads.

Every system in one run on the same server: gristmill, the two hand loops, FastStream
(default and batch), arq (no-op jobs) and the server's own XADD benchmark as the ceiling.
"""

from __future__ import annotations

from bench.apps import PASSTHROUGH_STREAMS
from bench.harness import Bench
from bench.systems import ALL_SYSTEMS, measure_each

SCENARIO = "passthrough"


def run(url: str, size: int) -> list[dict[str, object]]:
    bench = Bench(url)
    try:
        return measure_each(bench, SCENARIO, ALL_SYSTEMS, PASSTHROUGH_STREAMS, size)
    finally:
        bench.close()
