"""What waits in a delayed store, read for people: its counts and its first entries.

`runtime delayed stats` and `runtime delayed list` read stores through these; the store's
write and sweep side is `delayed.py`. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gristmill import keys
from gristmill.envelope import PAYLOAD, SCHEMA_ID
from gristmill.timing.packing import is_compact_entry, is_packed_entry, unpack_compact, unpack_entry

if TYPE_CHECKING:
    from redis.asyncio import Redis

SCAN_PIPELINE = 1000  # bucket lengths asked for per round trip


@dataclass(frozen=True, slots=True)
class DelayedEntry:
    """One waiting entry, for listing."""

    release_ms: int
    fields: list[bytes]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """How much waits in one store."""

    stream: str
    entries: int
    buckets: int  # sorted-set members that are buckets (the rest are single entries)
    earliest_release_ms: int | None
    latest_release_ms: int | None


def _as_bytes(value: object) -> bytes:
    # redis-py types replies loosely; our clients do not decode responses
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"expected a bulk string reply, got {type(value).__name__}")


def _scored(reply: object) -> list[tuple[bytes, int]]:
    assert isinstance(reply, list)
    return [(_as_bytes(member), int(score)) for member, score in reply]


async def store_stats(redis: Redis, stream: str) -> StoreStats:
    """Counts and the release-time range of `stream`'s store.

    Bucket members are found with ZSCAN MATCH on the server (a packed entry never starts
    with a digit), so a large zset-layout store is not sent over the wire to be counted.
    """
    store = keys.delayed_store(stream)
    refs: set[bytes] = set()  # ZSCAN may return a member twice across a rehash
    cursor = 0
    while True:
        cursor, page = await redis.zscan(store, cursor, match="[0-9]*", count=10_000)
        refs.update(_as_bytes(member) for member, _ in page)
        if cursor == 0:
            break
    entries = int(await redis.zcard(store)) - len(refs)
    ordered = sorted(refs)
    for start in range(0, len(ordered), SCAN_PIPELINE):
        pipe = redis.pipeline(transaction=False)
        for ref in ordered[start : start + SCAN_PIPELINE]:
            pipe.llen(keys.delayed_bucket(stream, int(ref)))
        entries += sum(int(n) for n in await pipe.execute())
    buckets = len(refs)
    first = _scored(await redis.zrange(store, 0, 0, withscores=True))
    last = _scored(await redis.zrange(store, -1, -1, withscores=True))
    return StoreStats(
        stream=stream,
        entries=entries,
        buckets=buckets,
        earliest_release_ms=first[0][1] if first else None,
        latest_release_ms=last[0][1] if last else None,
    )


async def peek(redis: Redis, stream: str, limit: int = 20) -> list[DelayedEntry]:
    """The first `limit` waiting entries of `stream`, earliest release first."""
    store = keys.delayed_store(stream)
    found: list[DelayedEntry] = []
    ids: dict[int, bytes] = {}
    start = 0
    while len(found) < limit:
        members = _scored(await redis.zrange(store, start, start + limit - 1, withscores=True))
        if not members:
            break
        for member, release in members:
            if len(found) >= limit:
                break
            if is_packed_entry(member):
                found.append(DelayedEntry(release, unpack_entry(member)))
                continue
            bucket = keys.delayed_bucket(stream, int(member))
            packed = await redis.lrange(bucket, 0, limit - len(found) - 1)
            found.extend(
                [DelayedEntry(release, await _unpack(redis, stream, _as_bytes(raw), ids))
                 for raw in packed]
            )  # fmt: skip
        start += limit
    return found


async def _unpack(redis: Redis, stream: str, member: bytes, ids: dict[int, bytes]) -> list[bytes]:
    """The flat fields of a stored entry, wire or compact (its schema ref looked up)."""
    if not is_compact_entry(member):
        return unpack_entry(member)
    ref, extra, payload = unpack_compact(member)
    if ref not in ids:
        found = await redis.hget(keys.delayed_schema_ids(stream), str(ref))
        ids[ref] = b"?" if found is None else _as_bytes(found)
    return [SCHEMA_ID, ids[ref], PAYLOAD, payload, *extra]
