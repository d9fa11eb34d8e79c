"""Scenario `pipeline`: three stages chained by stream names, Order -> Invoice -> taxed -> billed.

gristmill hosts its three processors in one `runtime serve` process; each hand loop runs its
three stages as three loops in one process. Timed on the last stream. FastStream, arq and
the server tool take part in `passthrough` only (one stage is where they differ).
"""

from __future__ import annotations

from bench.apps import PIPELINE_STREAMS
from bench.harness import Bench
from bench.systems import Row, measure, report_progress

SCENARIO = "pipeline"
SYSTEMS = ("gristmill", "handloop", "handloop-raw")


def run(url: str, size: int) -> list[dict[str, object]]:
    bench = Bench(url)
    try:
        rows: list[Row] = []
        for system in SYSTEMS:
            rows.append(measure(bench, SCENARIO, system, PIPELINE_STREAMS, size))
            report_progress(rows[-1])
        return rows
    finally:
        bench.close()
