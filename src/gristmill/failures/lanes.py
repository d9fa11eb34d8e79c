"""Dead-letter lanes in Redis: find them, read them, replay their entries, purge them.

Replay moves each entry back to its processor's own retry lane (never to the shared input
stream, which other groups read too) with one Lua script per bounded batch: XADD to the retry
lane and XDEL from the dead lane happen together, so a crash of the caller at any point leaves
every entry in exactly one of the two lanes. A replay only considers entries up to the lane's
last id when it starts: entries that fail again while it runs come back as new dead-letter
entries and are not replayed in a loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gristmill import keys, scripts
from gristmill.connect import unparsed
from gristmill.failures.deadletter import DeadLetterRecord, parse_fields

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from redis.asyncio import Redis

log = logging.getLogger(__name__)

PAGE = 500  # entries per XRANGE while reading a lane
REPLAY_BATCH = 100  # entries per replay script call; bounded so the script stays well under 5 s
REPLAY_BATCH_BYTES = 1 << 20  # and at most this many argument bytes per call
MAX_FIELD_ITEMS = 7000  # Lua's unpack() limit is near 8000 values; larger entries are refused
PURGE_BATCH = 500


@dataclass(frozen=True, slots=True)
class Lane:
    """One dead-letter lane: whose it is and what it holds."""

    key: str
    stream: str
    group: str
    entries: int
    first_id: str | None
    last_id: str | None


@dataclass(frozen=True, slots=True)
class DeadEntry:
    """One entry of a dead-letter lane, parsed."""

    entry_id: str
    record: DeadLetterRecord


@dataclass(frozen=True, slots=True)
class Selection:
    """Which entries of a lane to act on: by reason (any of) and by id range (inclusive)."""

    reasons: frozenset[str] = frozenset()
    start: str = "-"
    end: str = "+"
    limit: int | None = None

    def matches(self, record: DeadLetterRecord) -> bool:
        """True if `record` passes the reason filter (the id range is applied by XRANGE)."""
        return not self.reasons or record.reason in self.reasons


@dataclass(slots=True)
class ReplayResult:
    """What a replay did: moved, skipped (gone meanwhile), refused (not replayable), by reason."""

    moved: int = 0
    skipped: int = 0
    refused: int = 0
    moved_by_reason: dict[str, int] = field(default_factory=dict)


def lane_keys(stream: str, group: str) -> tuple[str, str]:
    """The (dead lane, retry lane) of `group` reading `stream`."""
    return keys.dead_lane(stream, group), keys.retry_lane(stream, group)


async def find_lanes(
    redis: Redis, *, stream: str | None = None, group: str | None = None
) -> list[Lane]:
    """Every dead-letter lane (SCAN, never KEYS), optionally of one stream and/or group."""
    found: dict[str, tuple[str, str]] = {}
    async for raw in redis.scan_iter(match=keys.dead_lane_pattern(), count=1000, _type="stream"):
        key = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        parts = keys.split_dead_lane(key)
        if parts is None:
            continue
        if (stream is None or parts[0] == stream) and (group is None or parts[1] == group):
            found[key] = parts
    lanes = []
    for key in sorted(found):
        lane_stream, lane_group = found[key]
        lanes.append(await describe_lane(redis, lane_stream, lane_group))
    return lanes


async def describe_lane(redis: Redis, stream: str, group: str) -> Lane:
    """The lane of (`stream`, `group`) with its length and first and last ids (0 if absent)."""
    key = keys.dead_lane(stream, group)
    length = int(await redis.xlen(key))
    first = await _range(redis, key, "-", "+", 1)
    last = await _range(redis, key, "+", "-", 1, reverse=True)
    return Lane(
        key, stream, group, length, first[0][0] if first else None, last[0][0] if last else None
    )


async def read_entries(
    redis: Redis, stream: str, group: str, selection: Selection = Selection()
) -> AsyncIterator[DeadEntry]:
    """The selected entries of the lane, oldest first, read a page at a time.

    An open end (`+`) is fixed at the lane's last id when reading starts, so entries added
    while reading (the same entries failing again after a replay) are not included.
    """
    key = keys.dead_lane(stream, group)
    end = selection.end
    if end == "+":
        newest = await _range(redis, key, "+", "-", 1, reverse=True)
        if not newest:
            return
        end = newest[0][0]
    start, yielded = selection.start, 0
    while True:
        page = await _range(redis, key, start, end, PAGE)
        for entry_id, fields in page:
            record = parse_fields(fields)
            if selection.matches(record):
                yield DeadEntry(entry_id, record)
                yielded += 1
                if selection.limit is not None and yielded >= selection.limit:
                    return
        if len(page) < PAGE:
            return
        start = "(" + page[-1][0]  # exclusive: the next page starts after the last id


async def reason_counts(
    redis: Redis, stream: str, group: str, *, limit: int
) -> tuple[dict[str, int], bool]:
    """Entries per reason over the first `limit` entries; True when the lane had more."""
    counts: dict[str, int] = {}
    seen = 0
    async for entry in read_entries(redis, stream, group, Selection(limit=limit + 1)):
        seen += 1
        if seen > limit:
            return counts, True
        counts[entry.record.reason] = counts.get(entry.record.reason, 0) + 1
    return counts, False


async def replay(
    redis: Redis, stream: str, group: str, selection: Selection = Selection()
) -> ReplayResult:
    """Move the selected entries to the processor's retry lane, with a fresh attempt budget."""
    dead, retry = lane_keys(stream, group)
    script = scripts.load("dlq_replay")
    result = ReplayResult()
    batch: list[DeadEntry] = []
    args: list[bytes | str | int] = []
    size = 0

    async def flush() -> None:
        nonlocal size
        if not batch:
            return
        moved, skipped = await script(redis, [dead, retry], [len(batch), *args])
        result.moved += int(moved)
        result.skipped += int(skipped)
        if int(moved) == len(batch):  # the common case; else we cannot tell which were skipped
            for entry in batch:
                reason = entry.record.reason
                result.moved_by_reason[reason] = result.moved_by_reason.get(reason, 0) + 1
        batch.clear()
        args.clear()
        size = 0

    async for entry in read_entries(redis, stream, group, selection):
        fields = entry.record.replay_fields() or entry.record.fields
        if not fields or len(fields) > MAX_FIELD_ITEMS:
            result.refused += 1
            log.warning(
                "dead-letter entry not replayable: %d field items", len(fields),
                extra={"stream": stream, "group": group, "entry_id": entry.entry_id},
            )  # fmt: skip
            continue
        entry_bytes = sum(len(item) for item in fields)
        if batch and (len(batch) >= REPLAY_BATCH or size + entry_bytes > REPLAY_BATCH_BYTES):
            await flush()
        batch.append(entry)
        args += [entry.entry_id, len(fields), *fields]
        size += entry_bytes
    await flush()
    log.info(
        "replayed %d dead-letter entries (%d gone meanwhile, %d refused)",
        result.moved, result.skipped, result.refused,
        extra={"stream": stream, "group": group},
    )  # fmt: skip
    return result


async def select_ids(
    redis: Redis, stream: str, group: str, selection: Selection = Selection()
) -> list[str]:
    """The ids of the selected entries (for a purge that deletes exactly what was confirmed)."""
    return [entry.entry_id async for entry in read_entries(redis, stream, group, selection)]


async def delete(redis: Redis, stream: str, group: str, entry_ids: list[str]) -> int:
    """XDEL `entry_ids` from the lane in batches; returns how many were still there."""
    key = keys.dead_lane(stream, group)
    deleted = 0
    for start in range(0, len(entry_ids), PURGE_BATCH):
        deleted += int(await redis.xdel(key, *entry_ids[start : start + PURGE_BATCH]))
    return deleted


async def _range(
    redis: Redis, key: str, start: str, end: str, count: int, *, reverse: bool = False
) -> list[tuple[str, list[bytes]]]:
    # A bytes command name skips redis-py's reply callback, which folds an entry's fields into a
    # dict and so loses a repeated field name: replay must put back exactly what was read.
    command = b"XREVRANGE" if reverse else b"XRANGE"
    reply = await unparsed(redis, key, command, key, start, end, "COUNT", count)
    return [(_text(entry_id), [_raw(item) for item in fields]) for entry_id, fields in reply]


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _raw(item: bytes | str) -> bytes:
    return item.encode() if isinstance(item, str) else item
