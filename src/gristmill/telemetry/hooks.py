"""What the pipeline needs from telemetry at import time: light, no OpenTelemetry imports."""

from __future__ import annotations

from collections.abc import Callable

BatchHook = Callable[[str, int, float, int, int], None]  # processor, size, handle_s, first/last ms


def entry_ms(entry_id: bytes) -> int:
    """The millisecond time in an entry id (`b"1700000000000-0"` -> 1700000000000)."""
    return int(entry_id.partition(b"-")[0])
