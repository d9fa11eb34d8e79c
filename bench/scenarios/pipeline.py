"""Scenario `pipeline`: three stages chained by stream names, Order -> Invoice -> taxed -> billed.

gristmill hosts its three processors in one `runtime serve` process; each hand loop runs its
three stages as three loops in one process. Timed on the last stream. FastStream, arq and
the server tool take part in `passthrough` only (one stage is where they differ).
"""

from __future__ import annotations

from bench.apps import PIPELINE_STREAMS
from bench.harness import Bench
from bench.systems import measure_each

SCENARIO = "pipeline"
SYSTEMS = ("gristmill", "handloop", "handloop-raw")


def run(url: str, size: int) -> list[dict[str, object]]:
    bench = Bench(url)
    try:
        return measure_each(bench, SCENARIO, SYSTEMS, PIPELINE_STREAMS, size)
    finally:
        bench.close()
