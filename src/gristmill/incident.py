"""Log a recurring failure once per incident, and its end once: not once per retry."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging


class Incident:
    """One kind of failure of one loop: `failed()` on every failed try, `ok()` on success.

    The first failure logs a warning; later ones log at DEBUG until a success ends the
    incident, which logs how long it lasted.
    """

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        """Record a failed try; only the first of an incident is a warning."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("%s: %s (logged once until it recovers)", self.what, exc)
        else:
            self.log.debug("%s, still: %s", self.what, exc)

    def ok(self) -> None:
        """Record a success; ends the incident, if one was open, with one line."""
        if self.since is not None:
            self.log.warning(
                "%s: recovered after %.1f s and %d failed tries",
                self.what, time.monotonic() - self.since, self.failures,
            )  # fmt: skip
            self.since, self.failures = None, 0
