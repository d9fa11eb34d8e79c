"""The bridge's bounded buffer between the subscription and the writer: pure, no I/O.

Pub/sub pushes whatever the server relays; nothing can slow a publisher down. So the buffer
has a fixed capacity and drops what does not fit, counting it, and reports each *incident*
(a run of drops between two moments when the buffer had room) once: `put` returns True for the
first drop of an incident, `take` reports the incident's total once the buffer has room again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ("BridgeBuffer", "BridgeCounts")

Message = tuple[bytes, bytes]  # (channel, payload)


@dataclass(slots=True)
class BridgeCounts:
    """What one bridge replica did since it started (for tests, logs and metrics)."""

    received: int = 0  # messages the subscription delivered
    written: int = 0  # entries this replica added to the stream
    skipped: int = 0  # redundant mode: already written by a replica within the window
    dropped_full: int = 0  # lost: the buffer was full
    dropped_fenced: int = 0  # lost: the lease was gone when they were to be written
    batches: int = 0
    terms: int = 0  # times this replica became the leader (single mode)
    slow_writes: int = 0  # batches the server took longer than the warning threshold to accept


class BridgeBuffer:
    """A FIFO of at most `capacity` messages; drops (and counts) what does not fit."""

    def __init__(self, capacity: int, counts: BridgeCounts) -> None:
        if capacity < 1:
            raise ValueError("capacity must be 1 or more")
        self.capacity = capacity
        self.counts = counts
        self._items: deque[Message] = deque()
        self._incident = 0  # drops of the incident in progress; 0: none

    def __len__(self) -> int:
        return len(self._items)

    def put(self, channel: bytes, payload: bytes) -> bool:
        """Add one message; True only if it was dropped and opened a new incident."""
        self.counts.received += 1
        if len(self._items) < self.capacity:
            self._items.append((channel, payload))
            return False
        self.counts.dropped_full += 1
        self._incident += 1
        return self._incident == 1

    def take(self, limit: int) -> tuple[list[Message], int]:
        """Up to `limit` messages, oldest first, and the size of an incident that just ended
        (0 when none did): the buffer has room again once something is taken."""
        items = self._items
        count = min(limit, len(items))
        batch = [items.popleft() for _ in range(count)]
        ended = 0
        if count and self._incident:
            ended, self._incident = self._incident, 0
        return batch, ended

    def clear(self) -> int:
        """Drop everything buffered (a term ended); returns how many were dropped."""
        count = len(self._items)
        self._items.clear()
        return count
