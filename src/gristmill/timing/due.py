"""When a delayed entry is due and when its bucket releases it (pure: no Redis, no clock)."""

from __future__ import annotations

import math
from datetime import datetime


def release_ms(due_ms: int, bucket_ms: int) -> int:
    """The time the store releases an entry due at `due_ms`: rounded up to its bucket's end.

    Rounding up means an entry is never released early, and at most `bucket_ms - 1` late.
    `bucket_ms` 0 is the zset layout: released at its own time.
    """
    if bucket_ms <= 0:
        return due_ms
    return -(-due_ms // bucket_ms) * bucket_ms


def due_ms_for(
    now_ms: int, *, delay: float | None = None, at: datetime | float | None = None
) -> int:
    """The due time of an entry scheduled `delay` seconds from `now_ms`, or `at` a time.

    Args:
        now_ms: the current time, ms since the epoch.
        delay: seconds from now (0 or more).
        at: an aware datetime, or seconds since the epoch.

    Raises:
        ValueError: Unless exactly one of `delay` and `at` is given, or if `delay` is negative
            or not finite, or `at` is a naive datetime.
    """
    if (delay is None) == (at is None):
        raise ValueError("give exactly one of delay= (seconds from now) and at= (a time)")
    if delay is not None:
        if not math.isfinite(delay) or delay < 0:
            raise ValueError(f"delay must be a finite number of seconds >= 0, got {delay!r}")
        return now_ms + round(delay * 1000)
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("at= must be timezone-aware (a naive datetime has no fixed instant)")
        return round(at.timestamp() * 1000)
    assert at is not None  # for mypy: exactly one was given
    if not math.isfinite(at):
        raise ValueError(f"at must be a finite epoch time in seconds, got {at!r}")
    return round(at * 1000)
