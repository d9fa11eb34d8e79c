"""A stop asked for before the runtime could listen: SIGTERM during start-up is not lost.

Imports, settings and the server connection take most of a second; Kubernetes (and tests)
may send SIGTERM in that time. `catch_early_stop()` runs first thing in the entry point and
records it; the runtime, once its own handlers are in place, drains at once if it was asked.
Signals are process-wide by nature, so the flag is too.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

STOP_ASKED = threading.Event()


def _remember(signum: int, _frame: Any) -> None:
    STOP_ASKED.set()


def catch_early_stop() -> None:
    """Record SIGTERM and SIGINT from now on instead of dying of them."""
    signal.signal(signal.SIGTERM, _remember)
    signal.signal(signal.SIGINT, _remember)
