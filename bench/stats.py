"""Pure figures from measurements: percentiles and gristmill's ratio to each peer."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

Row = dict[str, object]
RATE_KEYS = ("msgs_per_s", "entries_per_s")  # the first one a row has is its rate


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0..1) of `values`, nearest-rank on the sorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def rate_of(result: Row) -> float | None:
    """A row's rate (msgs/s, else entries/s), or None when it was not measured."""
    for key in RATE_KEYS:
        value = result.get(key)
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return None


def gristmill_ratios(rows: Sequence[Row]) -> dict[int, float]:
    """For each row index with a rate, gristmill's rate divided by that row's.

    The reference is the first `gristmill` row of the same scenario, so `2.0` means
    gristmill moved twice as many messages per second as that system.
    """
    reference: dict[object, float] = {}
    for result in rows:
        rate = rate_of(result)
        if result.get("system") == "gristmill" and rate is not None:
            reference.setdefault(result.get("scenario"), rate)
    ratios: dict[int, float] = {}
    for index, result in enumerate(rows):
        if result.get("system") == "gristmill":
            continue  # gristmill against itself says nothing (`workers` has its `scaling`)
        rate = rate_of(result)
        base = reference.get(result.get("scenario"))
        if rate is not None and base is not None:
            ratios[index] = base / rate
    return ratios


def scaling(rate: float, single: float) -> float:
    """How many times the one-worker rate `rate` is."""
    return rate / single if single > 0 else math.nan


def median_run(results: list[Row]) -> Row:
    """The run with the median rate, with every run's rate under `runs`."""
    rates = [r["msgs_per_s"] for r in results]
    measured = sorted(
        (r for r in results if isinstance(r["msgs_per_s"], int)),
        key=lambda r: int(r["msgs_per_s"]),  # type: ignore[call-overload]
    )
    chosen = dict(measured[(len(measured) - 1) // 2]) if measured else dict(results[-1])
    chosen["runs"] = rates
    return chosen


def _number(result: Row, key: str) -> float | None:
    value = result.get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def paired_ratio(
    runs: Sequence[Row], bases: Sequence[Row], key: str
) -> tuple[float, float, float] | None:
    """Round by round, `runs[i][key] / bases[i][key]`: the (median, lowest, highest) ratio.

    Variants measured round-robin meet the same noisy neighbour in each round, so the ratio
    within a round is steadier than the ratio of two medians. None if no round has both.
    """
    ratios = []
    for run, base in zip(runs, bases, strict=False):
        value, reference = _number(run, key), _number(base, key)
        if value is not None and reference is not None:
            ratios.append(value / reference)
    if not ratios:
        return None
    return statistics.median(ratios), min(ratios), max(ratios)
