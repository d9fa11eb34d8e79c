"""The scheduler's time arithmetic: intervals, cron in a zone, DST rules, and catch-up."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from gristmill.errors import ConfigError
from gristmill.tasks.timetable import Cron, Every, Timetable, due_fires, timetable

SECOND_MS = 1000
DAY_MS = 86_400_000


def _ms(instant: str) -> int:
    """Epoch ms of a UTC time written '2026-03-29 01:00'."""
    return int(datetime.fromisoformat(instant).replace(tzinfo=UTC).timestamp() * 1000)


def _utc(fire_ms: int) -> str:
    return datetime.fromtimestamp(fire_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _fires(table: Timetable, after: str, count: int) -> list[str]:
    """The next `count` fires after the UTC time `after`, as UTC times."""
    fires_ms = [table.next_after(_ms(after))]
    while len(fires_ms) < count:
        fires_ms.append(table.next_after(fires_ms[-1]))
    return [_utc(fire_ms) for fire_ms in fires_ms]


# --- Every ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval_ms", "after_ms", "expected_ms"),
    [
        (60_000, 0, 60_000),  # the anchor itself is not a fire
        (60_000, 120_000, 180_000),  # an exact multiple: strictly after
        (60_000, 120_001, 180_000),
        (60_000, -10 * 365 * DAY_MS, 60_000),  # after far before the anchor: the first fire
        (SECOND_MS, 10 * 365 * DAY_MS + 1, 10 * 365 * DAY_MS + SECOND_MS),
    ],
)
def test_every_next_after(interval_ms: int, after_ms: int, expected_ms: int) -> None:
    anchor_ms = 1_700_000_000_000
    table = Every(interval_ms, anchor_ms)
    assert table.next_after(anchor_ms + after_ms) == anchor_ms + expected_ms


def test_timetable_builds_every_in_ms() -> None:
    table = timetable(cron=None, every=timedelta(minutes=5), anchor_ms=1_000)
    assert table == Every(interval_ms=300_000, anchor_ms=1_000)


# --- invalid declarations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "every", "tz", "message"),
    [
        ("61 * * * *", None, "UTC", r"cron '61 \* \* \* \*': Bad minute; write 5 fields"),
        ("* * * *", None, "UTC", r"'\* \* \* \*': has 4 fields; write 5 fields: minute hour"),
        ("0 0 * * * *", None, "UTC", "has 6 fields"),
        ("@daily", None, "UTC", "has 1 fields"),
        ("0 0 30 2 *", None, "UTC", "Bad day-of-month"),
        ("0 3 * * *", None, "Mars/Olympus", r"tz='Mars/Olympus' is not an IANA zone name: use"),
        ("0 3 * * *", None, "", "tz='' is not an IANA zone name"),
        ("0 3 * * *", None, "../etc", "is not an IANA zone name"),
        ("0 3 * * *", timedelta(hours=1), "UTC", "give exactly one of cron="),
        (None, None, "UTC", "give exactly one of cron="),
        (None, timedelta(0), "UTC", r"every=datetime.timedelta\(0\) must be a positive timedelta"),
        (None, timedelta(seconds=-5), "UTC", "must be a positive timedelta"),
        (None, timedelta(microseconds=1500), "UTC", "must be a whole number of milliseconds"),
        (None, timedelta(hours=1), "Europe/Berlin", "tz='Europe/Berlin' only applies to cron="),
    ],
)
def test_invalid_schedule(cron: str | None, every: timedelta | None, tz: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        timetable(cron=cron, every=every, tz=tz, anchor_ms=0)


def test_every_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ConfigError, match="interval_ms=0 must be positive"):
        Every(interval_ms=0, anchor_ms=0)


# --- due_fires -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catch_up", "expected_s"),
    [
        (0, [10]),  # skip: only the latest due fire
        (1, [10]),
        (3, [8, 9, 10]),  # fewer than the 5 missed: the most recent ones
        (50, [6, 7, 8, 9, 10]),  # more than missed: every missed fire
    ],
)
def test_due_fires_every_skip_and_catch_up(catch_up: int, expected_s: list[int]) -> None:
    # last fired at 5 s; now is 10 s: fires 6..10 are due (10 is due at exactly now)
    table = Every(interval_ms=SECOND_MS, anchor_ms=0)
    due_ms = due_fires(table, last_fire_ms=5 * SECOND_MS, now_ms=10 * SECOND_MS, catch_up=catch_up)
    assert due_ms == [fire_s * SECOND_MS for fire_s in expected_s]


def test_due_fires_nothing_due() -> None:
    table = Every(interval_ms=SECOND_MS, anchor_ms=0)
    assert due_fires(table, last_fire_ms=10_000, now_ms=10_999, catch_up=5) == []
    assert due_fires(table, last_fire_ms=10_000, now_ms=9_000, catch_up=5) == []


@pytest.mark.parametrize(
    ("table", "catch_up", "expected"),
    [
        (Cron("* * * * *"), 3, ["2025-12-31 23:58", "2025-12-31 23:59", "2026-01-01 00:00"]),
        (Cron("0 12 29 2 *", "Europe/Berlin"), 0, ["2024-02-29 11:00"]),
        (Cron("0 * 29 2 *", "America/New_York"), 2, ["2024-03-01 03:00", "2024-03-01 04:00"]),
    ],
)
def test_due_fires_after_ten_years_is_quick(
    table: Timetable, catch_up: int, expected: list[str]
) -> None:
    started = time.perf_counter()
    due_ms = due_fires(
        table,
        last_fire_ms=_ms("2016-01-01 00:00"),
        now_ms=_ms("2026-01-01 00:00"),
        catch_up=catch_up,
    )
    assert time.perf_counter() - started < 1.0
    assert [_utc(fire_ms) for fire_ms in due_ms] == expected


def test_due_fires_every_second_after_ten_years_is_arithmetic() -> None:
    now_ms = _ms("2026-01-01 00:00")
    table = Every(interval_ms=SECOND_MS, anchor_ms=now_ms - 10 * 365 * DAY_MS)
    started = time.perf_counter()
    due_ms = due_fires(table, last_fire_ms=table.anchor_ms, now_ms=now_ms, catch_up=2)
    assert time.perf_counter() - started < 0.1  # 315 million missed fires, none visited
    assert due_ms == [now_ms - SECOND_MS, now_ms]


@pytest.mark.parametrize(
    ("expr", "catch_up", "expected"),
    [
        ("*/30 * * * *", 10, ["00:00", "00:30", "01:00", "01:30", "02:00"]),  # both 02:xx
        ("*/30 * * * *", 2, ["01:30", "02:00"]),
        ("30 2 * * *", 10, ["00:30"]),  # the repeated 02:30 fires once
    ],
)
def test_due_fires_across_fall_back(expr: str, catch_up: int, expected: list[str]) -> None:
    table = Cron(expr, "Europe/Berlin")
    due_ms = due_fires(
        table,
        last_fire_ms=_ms("2026-10-24 23:45"),
        now_ms=_ms("2026-10-25 02:00"),
        catch_up=catch_up,
    )
    assert [_utc(fire_ms) for fire_ms in due_ms] == [f"2026-10-25 {hm}" for hm in expected]


# --- cron ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", "2026-05-04 10:07", ["2026-05-04 10:15", "2026-05-04 10:30"]),
        ("*/15 * * * *", "2026-05-04 10:15", ["2026-05-04 10:30", "2026-05-04 10:45"]),
        ("0 9 * * MON-FRI", "2026-05-08 09:00", ["2026-05-11 09:00", "2026-05-12 09:00"]),
        ("0 0 1 * *", "2026-12-15 00:00", ["2027-01-01 00:00", "2027-02-01 00:00"]),
        ("0 0 29 2 *", "2026-01-01 00:00", ["2028-02-29 00:00", "2032-02-29 00:00"]),
    ],
)
def test_cron_in_utc(expr: str, after: str, expected: list[str]) -> None:
    assert _fires(Cron(expr), after, len(expected)) == expected


def test_cron_fire_is_strictly_after_to_the_millisecond() -> None:
    table = Cron("0 * * * *")
    assert table.next_after(_ms("2026-05-04 10:00") - 1) == _ms("2026-05-04 10:00")
    assert table.next_after(_ms("2026-05-04 10:00")) == _ms("2026-05-04 11:00")


# Every expected instant is UTC. Berlin: CET (+1) / CEST (+2); on 2026-03-29 02:00 CET jumps to
# 03:00 CEST (01:00 UTC); on 2026-10-25 03:00 CEST falls back to 02:00 CET (01:00 UTC).
# New York: EST (-5) / EDT (-4); on 2026-03-08 02:00 EST jumps to 03:00 EDT (07:00 UTC); on
# 2026-11-01 02:00 EDT falls back to 01:00 EST (06:00 UTC).
BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"),
    [
        # wall clock, spring forward: the missing time fires once, when the gap ends
        ("30 2 * * *", BERLIN, "2026-03-28 12:00", ["2026-03-29 01:00", "2026-03-30 00:30"]),
        ("0 2 * * *", BERLIN, "2026-03-28 12:00", ["2026-03-29 01:00", "2026-03-30 00:00"]),
        ("0,30 2 * * *", BERLIN, "2026-03-28 12:00", ["2026-03-29 01:00", "2026-03-30 00:00"]),
        ("30 2 * * *", BERLIN, "2026-03-29 01:00", ["2026-03-30 00:30"]),
        ("30 2 * * *", NEW_YORK, "2026-03-07 12:00", ["2026-03-08 07:00", "2026-03-09 06:30"]),
        ("0 2 * * *", NEW_YORK, "2026-03-07 12:00", ["2026-03-08 07:00", "2026-03-09 06:00"]),
        # wall clock, fall back: the repeated time fires once, at its first occurrence
        ("30 2 * * *", BERLIN, "2026-10-24 12:00", ["2026-10-25 00:30", "2026-10-26 01:30"]),
        ("0 2 * * *", BERLIN, "2026-10-24 12:00", ["2026-10-25 00:00", "2026-10-26 01:00"]),
        ("30 1 * * *", NEW_YORK, "2026-10-31 12:00", ["2026-11-01 05:30", "2026-11-02 06:30"]),
        ("0 2 * * *", NEW_YORK, "2026-10-31 12:00", ["2026-11-01 07:00", "2026-11-02 07:00"]),
        # ...also when asked from inside the repeated hour (cronsim repeats 00:30 UTC here)
        ("30 2 * * *", BERLIN, "2026-10-25 01:10", ["2026-10-26 01:30"]),
        ("30 1 * * *", NEW_YORK, "2026-11-01 06:10", ["2026-11-02 06:30"]),
        # wildcard hour, spring forward: real time, only the wall minutes that exist
        (
            "*/30 * * * *",
            BERLIN,
            "2026-03-28 23:50",
            ["2026-03-29 00:00", "2026-03-29 00:30", "2026-03-29 01:00", "2026-03-29 01:30"],
        ),
        ("0 * * * *", BERLIN, "2026-03-28 23:50", ["2026-03-29 00:00", "2026-03-29 01:00"]),
        ("0 * * * *", NEW_YORK, "2026-03-08 05:30", ["2026-03-08 06:00", "2026-03-08 07:00"]),
        (
            "*/30 * * * *",
            NEW_YORK,
            "2026-03-08 06:10",
            ["2026-03-08 06:30", "2026-03-08 07:00", "2026-03-08 07:30"],
        ),
        # wildcard hour, fall back: real time, both occurrences of the repeated hour
        (
            "*/30 * * * *",
            BERLIN,
            "2026-10-24 23:50",
            [f"2026-10-25 {hm}" for hm in ("00:00", "00:30", "01:00", "01:30", "02:00")],
        ),
        (
            "0 * * * *",
            BERLIN,
            "2026-10-24 23:50",
            ["2026-10-25 00:00", "2026-10-25 01:00", "2026-10-25 02:00"],
        ),
        (
            "0 * * * *",
            NEW_YORK,
            "2026-11-01 04:30",
            ["2026-11-01 05:00", "2026-11-01 06:00", "2026-11-01 07:00"],
        ),
        (
            "*/30 * * * *",
            NEW_YORK,
            "2026-11-01 05:10",
            [f"2026-11-01 {hm}" for hm in ("05:30", "06:00", "06:30", "07:00")],
        ),
    ],
)
def test_cron_across_dst(expr: str, tz: str, after: str, expected: list[str]) -> None:
    assert _fires(Cron(expr, tz), after, len(expected)) == expected


# --- against a minute-by-minute reference --------------------------------------------------


def _reference(table: Cron, low_s: int, high_s: int) -> list[int]:
    """The rules of the module docstring, checked one minute at a time (slow, obvious)."""
    zone = ZoneInfo(table.tz)

    def matches(wall: datetime) -> bool:
        return next(CronSim(table.expr, wall - timedelta(seconds=1))) == wall

    def wall_of(epoch_s: int) -> datetime:
        return datetime.fromtimestamp(epoch_s, zone).replace(tzinfo=None)

    fires_s: set[int] = set()
    if not table.wall_clock:  # every real minute whose wall time matches
        for epoch_s in range(low_s - low_s % 60, high_s + 1, 60):
            if matches(wall_of(epoch_s)):
                fires_s.add(epoch_s)
    else:  # every matching wall minute: its first occurrence, or the first real second after
        wall = wall_of(low_s).replace(second=0) - timedelta(hours=4)
        while wall <= wall_of(high_s) + timedelta(hours=4):
            if matches(wall):
                epoch_s = int(wall.replace(tzinfo=zone).timestamp())  # fold=0: first occurrence
                if wall_of(epoch_s) != wall:  # in a gap: scan on from the later offset's reading
                    epoch_s = int(wall.replace(tzinfo=zone, fold=1).timestamp())
                    while wall_of(epoch_s) < wall:
                        epoch_s += 1
                fires_s.add(epoch_s)
            wall += timedelta(minutes=1)
    return sorted(fire_s for fire_s in fires_s if low_s < fire_s <= high_s)


def _transitions_2026(zone: ZoneInfo) -> list[int]:
    """For each 2026 change of the zone's UTC offset, the first whole hour after it."""
    start_s = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    hours = [start_s + 3600 * hour for hour in range(366 * 24)]
    offsets = [datetime.fromtimestamp(epoch_s, zone).utcoffset() for epoch_s in hours]
    return [hours[i] for i in range(1, len(hours)) if offsets[i] != offsets[i - 1]]


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK, "Australia/Lord_Howe", "America/Havana"])
@pytest.mark.parametrize("expr", ["30 2 * * *", "0 0 * * *", "15 */2 * * *", "*/20 1-3 * * *"])
def test_cron_matches_reference_around_2026_transitions(expr: str, tz: str) -> None:
    # Lord Howe moves by 30 minutes; Havana changes its clocks at midnight
    table = Cron(expr, tz)
    for change_s in _transitions_2026(ZoneInfo(tz)):
        low_s, high_s = change_s - 4 * 3600, change_s + 5 * 3600
        expected_s = _reference(table, low_s, high_s)
        for after_s in (low_s, change_s - 1800, change_s, change_s + 1800, change_s + 3600):
            got_s = []
            fire_ms = table.next_after(after_s * 1000)
            while fire_ms <= high_s * 1000:
                got_s.append(fire_ms // 1000)
                fire_ms = table.next_after(fire_ms)
            assert got_s == [fire_s for fire_s in expected_s if fire_s > after_s], (after_s, tz)


def test_a_wildcard_minute_with_a_fixed_hour_runs_on_real_time() -> None:
    """Vixie cron's rule: `* 2 * * *` is a wildcard job, so the repeated hour fires twice."""
    table = Cron("* 2 * * *", "Europe/Berlin")
    assert not table.wall_clock
    start = int(datetime(2026, 10, 25, 0, 0, tzinfo=UTC).timestamp() * 1000) - 1
    fires = due_fires(table, last_fire_ms=start, now_ms=start + 2 * 3_600_000, catch_up=1000)
    assert len(fires) == 120  # 02:00-02:59 CEST, then 02:00-02:59 CET
