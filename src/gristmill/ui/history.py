"""The last snapshots the dashboard took, and the rates they give (pure: no I/O here).

Rates are `observe.shape.with_rates` between consecutive snapshots, as `runtime status`
computes them, so the page and the command agree. The throughput chart of a group is its
rate at each snapshot kept: `keep` snapshots every `interval` seconds cover the last minutes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gristmill.observe.shape import with_rates

if TYPE_CHECKING:
    from gristmill.observe.shape import Snapshot

DEFAULT_KEEP = 150  # at the default 2 s between snapshots: the last 5 minutes


@dataclass(frozen=True, slots=True)
class RatePoint:
    """A group's read rate over the interval that ended at `at_ms` (server time)."""

    at_ms: int
    per_s: float


class History:
    """The last `keep` snapshots, each with its rates since the one before."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        if keep < 2:
            raise ValueError("a history needs at least 2 snapshots to give a rate")
        self._snapshots: deque[Snapshot] = deque(maxlen=keep)

    def add(self, snapshot: Snapshot) -> Snapshot:
        """Keep `snapshot` (with its rates since the previous one) and return it so."""
        previous = self._snapshots[-1] if self._snapshots else None
        if previous is not None and snapshot.taken_ms <= previous.taken_ms:
            return with_rates(snapshot, None)  # the server's clock went back: no rate to give
        rated = with_rates(snapshot, previous)
        self._snapshots.append(rated)
        return rated

    @property
    def latest(self) -> Snapshot | None:
        """The newest snapshot kept, or None before the first."""
        return self._snapshots[-1] if self._snapshots else None

    def __len__(self) -> int:
        return len(self._snapshots)

    def series(self, stream: str, group: str) -> list[RatePoint]:
        """The group's read rate at every snapshot kept that has one, oldest first."""
        points = []
        for snapshot in self._snapshots:
            state = snapshot.group(stream, group)
            if state is not None and state.rate_per_s is not None:
                points.append(RatePoint(snapshot.taken_ms, state.rate_per_s))
        return points

    def all_series(self) -> dict[tuple[str, str], list[RatePoint]]:
        """`series` of every group seen, in one pass over the snapshots."""
        found: dict[tuple[str, str], list[RatePoint]] = {}
        for snapshot in self._snapshots:
            for stream in snapshot.streams:
                for state in stream.groups:
                    if state.rate_per_s is not None:
                        point = RatePoint(snapshot.taken_ms, state.rate_per_s)
                        found.setdefault((state.stream, state.group), []).append(point)
        return found
