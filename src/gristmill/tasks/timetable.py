"""When a scheduled task fires: pure time arithmetic, no I/O; every instant is epoch ms (UTC).

A timetable is `Every` (a fixed interval from an anchor) or `Cron` (a 5-field expression read
in an IANA zone, minute resolution). `next_after` gives the first fire strictly after an instant;
`due_fires` gives the fires a scheduler owes between its last fire and now, capped by catch-up.

Cron and daylight saving time follow Debian/Vixie cron:

- A job whose minute and hour fields are both values, lists or ranges (`30 2 * * *`,
  `0 9-17 * * *`) runs on the wall clock. A wall time the spring-forward gap skips fires once, at the first instant after
  the gap (`30 2 * * *` in Europe/Berlin on 2026-03-29 fires at 03:00 CEST = 01:00 UTC); all the
  job's times inside one gap collapse into that single fire. A wall time that the fall-back
  repeats fires once, at its first occurrence (02:30 CEST = 00:30 UTC on 2026-10-25).
- A job whose minute or hour field starts with `*` (`*/5 * * * *`, `0 * * * *`,
  `0 */2 * * *`, `* 2 * * *`) runs on real elapsed time, as Vixie cron's "wildcard" jobs: it
  fires at every instant whose local wall time matches, so in the repeated hour it fires in both
  occurrences, and across the gap only at the wall minutes that exist.

cronsim parses and matches the fields, always on naive wall times; the zone arithmetic is ours.
cronsim's own zone handling is not used: it repeats a fire when it starts inside a repeated hour
(from 02:10 CET on 2026-10-25, `30 2 * * *` gives 02:30 CEST, an instant already past) and
skips some real-time fires in half-hour shifts (Australia/Lord_Howe). Real-time jobs walk
constant-offset stretches of the zone, probing its UTC offset once a day: this assumes no zone changes its offset twice within one day (since 1900 the closest pair
in the tz database is four days apart).

`due_fires` on a `Cron` looks back at most `LOOKBACK_MS` (ten years) and finds the most recent
fires by bisecting that span, so a last fire far in the past costs a few dozen steps, not a walk.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from gristmill.errors import ConfigError

LOOKBACK_MS = 3653 * 86_400_000  # due_fires on a Cron ignores fires older than ten years
_WALK_MS = 3_600_000  # spans this short are walked fire by fire (at most 61 fires)
_DAY_S = 86_400  # a real-time job probes the zone's UTC offset this often
_NEVER_S = 2**62  # no limit
_EPOCH = datetime(1970, 1, 1)
_CRON_FIX = (
    "write 5 fields: minute hour day-of-month month day-of-week, e.g. '*/15 * * * *' "
    "or '30 2 * * MON-FRI'"
)


@dataclass(frozen=True, slots=True)
class Every:
    """Fires at `anchor_ms + k * interval_ms` for k >= 1."""

    interval_ms: int
    anchor_ms: int

    def __post_init__(self) -> None:
        if self.interval_ms <= 0:
            raise ConfigError(
                f"every: interval_ms={self.interval_ms} must be positive: "
                "e.g. every=timedelta(minutes=5)"
            )

    def next_after(self, after_ms: int) -> int:
        """The first fire instant strictly after `after_ms`."""
        return self.anchor_ms + self._first_k(after_ms) * self.interval_ms

    def _first_k(self, after_ms: int) -> int:
        return max(1, (after_ms - self.anchor_ms) // self.interval_ms + 1)


@dataclass(frozen=True, slots=True)
class Cron:
    """Fires when the wall time in `tz` matches `expr`; see the module docstring for DST."""

    expr: str
    tz: str = "UTC"

    def __post_init__(self) -> None:
        what = f"cron {self.expr!r}"
        if len(self.expr.split()) != 5:
            raise ConfigError(f"{what}: has {len(self.expr.split())} fields; {_CRON_FIX}")
        try:
            CronSim(self.expr, _EPOCH)
        except CronSimError as error:
            raise ConfigError(f"{what}: {error}; {_CRON_FIX}") from None
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{what}: tz={self.tz!r} is not an IANA zone name: use one such as "
                "'Europe/Berlin' or 'UTC' (if the name is right, the system has no zone "
                "database: pip install tzdata)"
            ) from None

    @property
    def wall_clock(self) -> bool:
        """True when neither the minute nor the hour field starts with `*` (Vixie cron's
        non-wildcard jobs): the job runs on the wall clock."""
        minute, hour = self.expr.split()[:2]
        return not (minute.startswith("*") or hour.startswith("*"))

    def next_after(self, after_ms: int) -> int:
        """The first fire instant strictly after `after_ms`."""
        fire_ms = self._fire_after(after_ms, _NEVER_S * 1000)
        if fire_ms is None:
            raise ConfigError(f"cron {self.expr!r}: matches no time within 50 years; {_CRON_FIX}")
        return fire_ms

    def _fire_after(self, after_ms: int, limit_ms: int) -> int | None:
        """The first fire in (after_ms, limit_ms], or None."""
        zone, after_s, limit_s = ZoneInfo(self.tz), after_ms // 1000, limit_ms // 1000
        if self.wall_clock:
            fire_s = self._wall_after(zone, after_s)
        else:
            fire_s = self._real_after(zone, after_s, limit_s)
        return fire_s * 1000 if fire_s is not None and fire_s <= limit_s else None

    def _wall_after(self, zone: ZoneInfo, after_s: int) -> int | None:
        # wall time -> instant is non-decreasing, and no wall time at or before `after_s`'s own
        # maps past it; later wall times in a repeated hour map before it, so skip those
        wall = datetime.fromtimestamp(after_s, zone).replace(tzinfo=None)
        while (match := _next_match(self.expr, wall)) is not None:
            if (fire_s := _wall_instant(zone, match)) > after_s:
                return fire_s
            wall = match
        return None

    def _real_after(self, zone: ZoneInfo, after_s: int, limit_s: int) -> int | None:
        # within a stretch of constant UTC offset the wall clock is `instant + offset`
        while True:
            offset_s = _offset_s(zone, after_s + 1)
            wall = _next_match(self.expr, _naive(after_s + offset_s))
            if wall is None:
                return None
            fire_s, probe_s = _epoch_s(wall) - offset_s, after_s + 1
            while True:
                step_s = min(fire_s, probe_s + _DAY_S)
                if _offset_s(zone, step_s) != offset_s:
                    after_s = _first_change(zone, probe_s, step_s) - 1  # a new stretch
                    break
                if step_s == fire_s:
                    return fire_s
                if step_s >= limit_s:
                    return None
                probe_s = step_s


Timetable = Every | Cron


def timetable(
    *, cron: str | None, every: timedelta | None, tz: str = "UTC", anchor_ms: int
) -> Timetable:
    """The timetable of a task declared with exactly one of `cron=` or `every=`."""
    if (cron is None) == (every is None):
        raise ConfigError(
            "schedule: give exactly one of cron='...' or every=timedelta(...), "
            f"got cron={cron!r}, every={every!r}"
        )
    if cron is not None:
        return Cron(cron, tz)
    if not isinstance(every, timedelta) or every <= timedelta(0):
        raise ConfigError(
            f"schedule: every={every!r} must be a positive timedelta: "
            "e.g. every=timedelta(minutes=5)"
        )
    if every % timedelta(milliseconds=1):
        raise ConfigError(f"schedule: every={every!r} must be a whole number of milliseconds")
    if tz != "UTC":
        raise ConfigError(f"schedule: tz={tz!r} only applies to cron=; every= runs on real time")
    return Every(every // timedelta(milliseconds=1), anchor_ms)


def due_fires(table: Timetable, *, last_fire_ms: int, now_ms: int, catch_up: int) -> list[int]:
    """The fires in (last_fire_ms, now_ms], oldest first: the max(1, catch_up) most recent.

    catch_up=0 skips missed fires (only the latest due one fires); catch_up=N fires at most N.
    """
    count = max(1, catch_up)
    if isinstance(table, Every):
        first_k = table._first_k(last_fire_ms)
        last_k = (now_ms - table.anchor_ms) // table.interval_ms
        start_k = max(first_k, last_k - count + 1)
        return [table.anchor_ms + k * table.interval_ms for k in range(start_k, last_k + 1)]
    return _latest(table, max(last_fire_ms, now_ms - LOOKBACK_MS), now_ms, count)


def _latest(table: Cron, low_ms: int, high_ms: int, count: int) -> list[int]:
    """The `count` most recent fires in (low_ms, high_ms], oldest first, by bisection."""
    first_ms = table._fire_after(low_ms, high_ms)
    if first_ms is None:
        return []
    if high_ms - low_ms <= _WALK_MS:
        fires = deque([first_ms], maxlen=count)
        while (fire_ms := table._fire_after(fires[-1], high_ms)) is not None:
            fires.append(fire_ms)
        return list(fires)
    middle_ms = low_ms + (high_ms - low_ms) // 2
    later = _latest(table, middle_ms, high_ms, count)
    if len(later) == count:
        return later
    return _latest(table, low_ms, middle_ms, count - len(later)) + later


def _next_match(expr: str, wall: datetime) -> datetime | None:
    """The first naive wall time after `wall` that `expr` matches (None: none within 50 years)."""
    try:
        return next(CronSim(expr, wall))
    except StopIteration:
        return None


def _wall_instant(zone: ZoneInfo, wall: datetime) -> int:
    """When a wall-clock job set for `wall` fires: its first occurrence, or the gap's end."""
    first_s = _epoch_s(wall) - _offset_s(zone, wall.replace(tzinfo=zone, fold=0))
    if datetime.fromtimestamp(first_s, zone).replace(tzinfo=None) == wall:
        return first_s
    # in a gap: fold=0 reads it with the offset before the change, fold=1 with the one after
    before_s = _epoch_s(wall) - _offset_s(zone, wall.replace(tzinfo=zone, fold=1))
    return _first_change(zone, before_s, first_s)


def _first_change(zone: ZoneInfo, low_s: int, high_s: int) -> int:
    """The first second in (low_s, high_s] whose UTC offset differs from low_s's (one change)."""
    offset_s = _offset_s(zone, low_s)
    while high_s - low_s > 1:
        middle_s = (low_s + high_s) // 2
        if _offset_s(zone, middle_s) == offset_s:
            low_s = middle_s
        else:
            high_s = middle_s
    return high_s


def _offset_s(zone: ZoneInfo, moment: int | datetime) -> int:
    """The zone's UTC offset in seconds at an epoch second or an aware wall time."""
    aware = datetime.fromtimestamp(moment, zone) if isinstance(moment, int) else moment
    return (aware.utcoffset() or timedelta(0)) // timedelta(seconds=1)


def _naive(epoch_s: int) -> datetime:
    return _EPOCH + timedelta(seconds=epoch_s)


def _epoch_s(wall: datetime) -> int:
    return (wall - _EPOCH) // timedelta(seconds=1)
