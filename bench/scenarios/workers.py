"""Scenario `workers`: the passthrough app under `runtime serve --workers 1` and `--workers 2`.

On this machine the server and the workers share 2 cores, so the second worker competes
with the server for CPU: the ratio is reported as measured, not as a target.
"""

from __future__ import annotations

from bench.apps import PASSTHROUGH_STREAMS
from bench.harness import Bench
from bench.stats import rate_of, scaling
from bench.systems import Row, measure, report_progress

SCENARIO = "workers"
WORKER_COUNTS = (1, 2)


def run(url: str, size: int) -> list[dict[str, object]]:
    bench = Bench(url)
    try:
        rows: list[Row] = []
        single: float | None = None  # the one-worker rate
        for workers in WORKER_COUNTS:
            result = measure(
                bench, SCENARIO, "gristmill", PASSTHROUGH_STREAMS, size, workers=workers
            )
            result["workers"] = workers
            rate = rate_of(result)
            single = rate if workers == 1 else single
            if single is not None and rate is not None:
                result["scaling"] = round(scaling(rate, single), 2)
            rows.append(result)
            report_progress(result)
        return rows
    finally:
        bench.close()
