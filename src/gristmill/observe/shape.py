"""Pure shaping of a snapshot: raw Redis replies in, plain dataclasses out (no I/O here).

`snapshot.py` gathers the replies; `runtime status`, the metrics gauges and a later dashboard all
read the `Snapshot` this module builds, so every view shows the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class ConsumerState:
    """One consumer of a group: what it holds and how long it has been silent."""

    name: str
    pending: int
    idle_ms: int


@dataclass(frozen=True, slots=True)
class GroupState:
    """One consumer group on one stream, with the lanes gristmill keeps for it."""

    stream: str
    group: str
    lag: int | None  # entries not yet delivered to the group (None: the server cannot tell)
    pending: int  # delivered, not yet acked
    oldest_pending_age_ms: int | None  # age (by entry id time) of the oldest pending entry
    entries_read: int | None
    consumers: tuple[ConsumerState, ...]
    dead_letters: int  # entries in the group's dead-letter lane
    retry_waiting: int  # entries parked in the delayed store of the group's retry lane
    rate_per_s: float | None = None  # entries read per second since the previous snapshot


@dataclass(frozen=True, slots=True)
class DelayedState:
    """One delayed store: how much waits and when the next one is due."""

    stream: str
    entries: int
    approximate: bool  # more buckets than one snapshot reads: `entries` is a lower bound
    next_due_ms: int | None


@dataclass(frozen=True, slots=True)
class LeaseState:
    """Who holds a leader lease, and for how much longer without renewal."""

    role: str
    holder: str | None
    ttl_ms: int | None


@dataclass(frozen=True, slots=True)
class StreamState:
    """One stream: its length and last id, and its groups."""

    stream: str
    length: int
    last_id: str
    groups: tuple[GroupState, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything `runtime status` shows, taken at `taken_ms` (server time)."""

    taken_ms: int
    streams: tuple[StreamState, ...]
    delayed: tuple[DelayedState, ...]
    leases: tuple[LeaseState, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """A plain dict (the `--json` document)."""
        return asdict(self)

    def group(self, stream: str, group: str) -> GroupState | None:
        """The state of `group` on `stream`, if the snapshot saw it."""
        for state in self.streams:
            if state.stream == stream:
                return next((g for g in state.groups if g.group == group), None)
        return None


def text(value: object) -> str:
    """A reply item as text (our clients do not decode responses)."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def as_dict(reply: Any) -> dict[str, Any]:
    """An XINFO reply (flat [name, value, ...] list, or already a dict) as a dict."""
    if isinstance(reply, dict):
        return {text(k): v for k, v in reply.items()}
    items = list(reply)
    return {text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def id_ms(entry_id: object) -> int | None:
    """The millisecond part of an entry id (`1700000000000-3` -> 1700000000000)."""
    if entry_id is None:
        return None
    head = text(entry_id).partition("-")[0]
    return int(head) if head.isdigit() else None


def optional_int(value: object) -> int | None:
    """An integer reply, or None for a nil reply."""
    return None if value is None else int(text(value))


def pending_age_ms(summary: Any, now_ms: int) -> int | None:
    """The oldest pending entry's age from an XPENDING summary: [count, min, ...] or a dict."""
    if isinstance(summary, dict):
        count, first = summary.get("pending", 0), summary.get("min")
    else:
        count, first = (summary[0], summary[1]) if summary else (0, None)
    if not count:
        return None
    oldest = id_ms(first)
    return None if oldest is None else max(now_ms - oldest, 0)


def consumers_of(reply: Any) -> tuple[ConsumerState, ...]:
    """XINFO CONSUMERS, shaped."""
    states = []
    for item in reply:
        info = as_dict(item)
        states.append(
            ConsumerState(text(info["name"]), int(info["pending"]), int(info.get("idle", 0)))
        )
    return tuple(sorted(states, key=lambda c: c.name))


def delayed_entries(zcard: int, sampled: list[bytes], bucket_sizes: list[int]) -> tuple[int, bool]:
    """Entries in a store from its ZCARD, the members read and the sizes of the buckets among them.

    Bucket members are decimal release times (a packed single entry never starts with a
    digit); each holds `bucket_sizes[i]` entries. Members not read are counted as one each.
    """
    buckets = sum(1 for member in sampled if member[:1].isdigit())
    approximate = zcard > len(sampled) and buckets > 0
    return zcard - buckets + sum(bucket_sizes), approximate


def with_rates(current: Snapshot, previous: Snapshot | None) -> Snapshot:
    """`current` with each group's read rate since `previous` (same group, entries_read)."""
    if previous is None or current.taken_ms <= previous.taken_ms:
        return current
    seconds = (current.taken_ms - previous.taken_ms) / 1000
    streams = []
    for stream in current.streams:
        groups = []
        for group in stream.groups:
            before = previous.group(group.stream, group.group)
            rate = None
            if before and before.entries_read is not None and group.entries_read is not None:
                rate = max(group.entries_read - before.entries_read, 0) / seconds
            groups.append(replace(group, rate_per_s=rate))
        streams.append(StreamState(stream.stream, stream.length, stream.last_id, tuple(groups)))
    return Snapshot(
        current.taken_ms, tuple(streams), current.delayed, current.leases, current.notes
    )
