"""A bench loop's watchdog: a phase that stops progressing fails with a message, never hangs."""

from __future__ import annotations

import time

STALL_S = 30.0  # no progress for this long: the phase has stalled


class Stalled(RuntimeError):
    """Raised when a bench phase made no progress for `STALL_S` seconds."""


class Progress:
    """Call `check(done)` in a loop; raises Stalled once `done` stops growing for `stall_s`.

    Args:
        what: the phase, for the message ("sweep drain").
        total: how much the phase has to do.
        stall_s: how long without progress counts as stalled.
    """

    def __init__(self, what: str, total: int, stall_s: float = STALL_S) -> None:
        self.what = what
        self.total = total
        self.stall_s = stall_s
        self._best = -1
        self._since = time.monotonic()

    def check(self, done: int, detail: str = "") -> None:
        """Note `done`; raise Stalled if it has not grown for `stall_s` seconds."""
        now = time.monotonic()
        if done > self._best:
            self._best, self._since = done, now
        elif now - self._since > self.stall_s:
            extra = f" ({detail})" if detail else ""
            raise Stalled(
                f"{self.what}: no progress for {self.stall_s:.0f} s at {done:,} of "
                f"{self.total:,}{extra}"
            )
