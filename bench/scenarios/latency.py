"""Scenario `latency`: end-to-end p50/p99 at half of each system's measured saturation.

For each system: measure its pass-through saturation (as in `passthrough`), start it on an
empty input, warm it up, then offer half that rate with a paced producer for about
LOAD_S seconds, reading every output as it appears (see bench/load.py). The first
WARMUP_FRACTION of the messages are left out of the percentiles. Last, gristmill again at
the rate the hand loop was offered, so the two tails compare at the same load.
"""

from __future__ import annotations

import asyncio

from bench.apps import PASSTHROUGH_STREAMS
from bench.harness import Bench, BenchError
from bench.load import paced_run
from bench.stats import percentile
from bench.systems import Row, measure, report_progress, stream_command

SCENARIO = "latency"
SYSTEMS = ("gristmill", "handloop", "handloop-raw")
LOAD_FRACTION = 0.5  # of saturation
LOAD_S = 5.0
WARMUP_FRACTION = 0.1
_READY_ORDERS = 10  # sent before timing: the system must have answered these


def run(url: str, size: int) -> list[dict[str, object]]:
    bench = Bench(url)
    try:
        rows: list[Row] = []
        for system in SYSTEMS:
            rows.append(latency_row(bench, system, size))
            report_progress(rows[-1])
        # gristmill again, at the load the hand loop was offered (half of its saturation)
        handloop = next((row for row in rows if row["system"] == "handloop"), {})
        offered = handloop.get("offered_per_s")
        if isinstance(offered, int):
            row = paced_row(bench, "gristmill", offered, size, None)
            rows.append({**row, "system": "gristmill at handloop's load"})
            report_progress(rows[-1])
        return rows
    finally:
        bench.close()


def latency_row(bench: Bench, system: str, size: int) -> Row:
    """Saturation first, then the paced run at LOAD_FRACTION of it."""
    saturation = measure(bench, SCENARIO, system, PASSTHROUGH_STREAMS, size)
    rate = saturation.get("msgs_per_s")
    if not isinstance(rate, int):
        note = f"no saturation figure: {saturation.get('note')}"
        return {"scenario": SCENARIO, "system": system, "note": note}
    return paced_row(bench, system, rate * LOAD_FRACTION, size, rate)


def paced_row(bench: Bench, system: str, offered: float, size: int, rate: int | None) -> Row:
    """p50/p99 of `system` at `offered` msg/s (`rate`: its saturation, if measured)."""
    result: Row = {"scenario": SCENARIO, "system": system}
    count = max(1000, min(size, int(offered * LOAD_S)))
    try:
        latencies, missing, duplicates = _paced(bench, system, offered, count)
    except BenchError as exc:
        return {**result, "note": f"not measured: {exc}"}
    timed = [latencies[n] * 1000 for n in sorted(latencies) if n >= count * WARMUP_FRACTION]
    result.update(
        p50_ms=round(percentile(timed, 0.50), 3),
        p99_ms=round(percentile(timed, 0.99), 3),
        offered_per_s=round(offered),
        messages=count,
    )
    if rate is not None:
        result["saturation_msgs_per_s"] = rate
    if missing or duplicates:
        result["note"] = f"{missing} outputs missing, {duplicates} duplicated"
    return result


def _paced(
    bench: Bench, system: str, offered: float, count: int
) -> tuple[dict[int, float], int, int]:
    source, target = PASSTHROUGH_STREAMS
    bench.flush()
    ids = bench.register_schemas()
    command, env = stream_command(system, bench.url, PASSTHROUGH_STREAMS, ids.invoice)
    process = bench.launch(f"{system}-latency", command, env)
    try:
        # warm up: the consumer has started, joined its group and answered
        bench.prefill(source, _READY_ORDERS, ids.order)
        probe = bench.count_entries(target)
        bench.time_outputs(probe, _READY_ORDERS, process)
        load = asyncio.run(
            paced_run(bench.url, source, target, ids.order, count, offered, start=_READY_ORDERS)
        )
    finally:
        process.stop()
    missing = count - len(load.latencies_s)
    return load.latencies_s, missing, load.duplicates
