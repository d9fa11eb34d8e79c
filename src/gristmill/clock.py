"""The one place that reads wall-clock time, so tests can replace it with a FakeClock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Milliseconds since the Unix epoch; the seam every timed decision goes through."""

    def now_ms(self) -> int: ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that moves only when told to; for tests of backoff, delays and schedules."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`."""
        self._now_ms += round(seconds * 1000)


SYSTEM_CLOCK = SystemClock()
