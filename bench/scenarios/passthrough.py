"""Scenario `passthrough`: consume -> decode, transform, encode -> produce, ~100-byte payloads.

Every system in one run on the same server: gristmill, the two hand loops, FastStream
(default and batch), arq (no-op jobs) and the server's own XADD benchmark as the ceiling.
"""

from __future__ import annotations

from bench.apps import PASSTHROUGH_STREAMS
from bench.harness import Bench
from bench.systems import ALL_SYSTEMS, Row, measure, report_progress

SCENARIO = "passthrough"


def run(url: str, size: int) -> list[dict[str, object]]:
    bench = Bench(url)
    try:
        rows: list[Row] = []
        for system in ALL_SYSTEMS:
            rows.append(measure(bench, SCENARIO, system, PASSTHROUGH_STREAMS, size))
            report_progress(rows[-1])
        return rows
    finally:
        bench.close()
