"""Scenario `workers`: the passthrough app under `runtime serve --workers 1` and `--workers 2`.

On this machine the server and the workers share 2 cores, so the second worker competes
with the server for CPU: the ratio is reported as measured, not as a target.
"""

from __future__ import annotations

from bench.apps import PASSTHROUGH_STREAMS
from bench.harness import Bench
from bench.stats import median_run, rate_of, scaling
from bench.systems import Row, measure, repeats, report_progress

SCENARIO = "workers"
WORKER_COUNTS = (1, 2)


def run(url: str, size: int) -> list[dict[str, object]]:
    bench = Bench(url)
    try:
        runs: dict[int, list[Row]] = {workers: [] for workers in WORKER_COUNTS}
        for _ in range(repeats()):  # round-robin, like the other scenarios
            for workers in WORKER_COUNTS:
                result = measure(
                    bench, SCENARIO, "gristmill", PASSTHROUGH_STREAMS, size, workers=workers
                )
                runs[workers].append({**result, "workers": workers})
                report_progress(runs[workers][-1])
        rows = [median_run(runs[w]) if len(runs[w]) > 1 else runs[w][0] for w in WORKER_COUNTS]
        single = rate_of(rows[0])
        for result in rows:
            rate = rate_of(result)
            if single is not None and rate is not None:
                result["scaling"] = round(scaling(rate, single), 2)
        return rows
    finally:
        bench.close()
