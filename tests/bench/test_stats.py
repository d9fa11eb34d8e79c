"""Pure figures of the benchmark report: no server needed."""

from __future__ import annotations

import math

from bench.stats import Row, gristmill_ratios, median_run, paired_ratio, percentile, rate_of


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100

    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert math.isnan(percentile([], 0.5))


def test_ratios_divide_gristmill_by_each_system_of_its_scenario() -> None:
    rows: list[dict[str, object]] = [
        {"scenario": "passthrough", "system": "gristmill", "msgs_per_s": 100_000},
        {"scenario": "passthrough", "system": "handloop", "msgs_per_s": 50_000},
        {"scenario": "passthrough", "system": "faststream", "msgs_per_s": None},
        {"scenario": "sweep", "system": "zset", "entries_per_s": 10},
    ]

    ratios = gristmill_ratios(rows)

    assert ratios == {1: 2.0}  # not gristmill itself; no rate or no gristmill row: no ratio


def test_rate_prefers_messages_then_entries() -> None:
    assert rate_of({"msgs_per_s": 5, "entries_per_s": 7}) == 5.0
    assert rate_of({"entries_per_s": 7}) == 7.0
    assert rate_of({"bytes_per_entry": 90}) is None


def test_median_run_keeps_the_middle_rate_and_lists_every_run() -> None:
    runs: list[dict[str, object]] = [
        {"system": "handloop", "msgs_per_s": 300, "seconds": 1.0},
        {"system": "handloop", "msgs_per_s": None, "note": "stalled"},
        {"system": "handloop", "msgs_per_s": 100, "seconds": 3.0},
        {"system": "handloop", "msgs_per_s": 200, "seconds": 2.0},
    ]

    chosen = median_run(runs)

    assert chosen["msgs_per_s"] == 200
    assert chosen["seconds"] == 2.0
    assert chosen["runs"] == [300, None, 100, 200]
    assert median_run([{"msgs_per_s": None, "note": "x"}])["note"] == "x"


def test_paired_ratio_divides_within_each_round_and_skips_unmeasured_rounds() -> None:
    runs: list[Row] = [{"msgs_per_s": rate} for rate in (90, 50, None, 120)]
    bases: list[Row] = [{"msgs_per_s": rate} for rate in (100, 50, 80, 100)]
    # rounds: 0.9, 1.0, (unmeasured), 1.2 -> the median of the three, then the extremes
    assert paired_ratio(runs, bases, "msgs_per_s") == (1.0, 0.9, 1.2)
    unmeasured: list[Row] = [{"msgs_per_s": None}] * 4
    assert paired_ratio(runs, unmeasured, "msgs_per_s") is None
