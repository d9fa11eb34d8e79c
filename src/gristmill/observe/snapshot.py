"""Take one snapshot from Redis: a bounded number of pipelined commands, then `shape` it.

Per stream: XINFO STREAM and XINFO GROUPS; per group: XPENDING (summary), XINFO CONSUMERS,
XLEN of its dead-letter lane, ZCARD of its retry lane's delayed store; per delayed store: ZCARD,
its first member and at most `BUCKETS_READ` bucket sizes; per lease role: GET and PTTL.
Streams are those of the given apps, or found with SCAN TYPE stream (at most `MAX_STREAMS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill import keys
from gristmill.observe.shape import (
    DelayedState,
    GroupState,
    LeaseState,
    Snapshot,
    StreamState,
    as_dict,
    consumers_of,
    delayed_entries,
    optional_int,
    pending_age_ms,
    text,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from redis.asyncio import Redis

MAX_STREAMS = 200
BUCKETS_READ = 100
LEASE_ROLES = ("sweeper", "scheduler")
_NONE: frozenset[str] = frozenset()
_LANE_MARKERS = (":retry:", ":dead:", ":class:")


def is_lane(key: str) -> bool:
    """True for gristmill's own lanes (retry, dead-letter, class lanes) of a user stream."""
    return key.startswith("{") and any(marker in key for marker in _LANE_MARKERS)


async def find_streams(redis: Redis, limit: int = MAX_STREAMS) -> list[str]:
    """User streams on the server (lanes left out), sorted; at most `limit`."""
    found: set[str] = set()
    async for key in redis.scan_iter(count=1000, _type="stream"):
        name = text(key)
        if not is_lane(name):
            found.add(name)
        if len(found) >= limit:
            break
    return sorted(found)


async def take_snapshot(
    redis: Redis,
    streams: Iterable[str] | None = None,
    *,
    prefix: str = keys.DEFAULT_PREFIX,
    roles: Iterable[str] = LEASE_ROLES,
    groups: Mapping[str, frozenset[str]] | None = None,
    delayed_targets: Iterable[str] | None = None,
) -> Snapshot:
    """One consistent-enough view of `streams` (default: every user stream) and their lanes.

    `groups` (stream -> group names) and `delayed_targets` narrow the view to what one
    service owns, so a runtime under its own ACL user reads only keys it may read.
    """
    names = sorted(set(streams)) if streams is not None else await find_streams(redis)
    now_ms = await _server_ms(redis)
    notes: list[str] = []
    states = [
        await _stream_state(
            redis, name, now_ms, None if groups is None else groups.get(name, _NONE)
        )
        for name in names[:MAX_STREAMS]
    ]
    if len(names) > MAX_STREAMS:
        notes.append(f"{len(names) - MAX_STREAMS} more streams not shown")
    if delayed_targets is None:
        delayed_targets = [text(t) for t in await redis.smembers(keys.delayed_targets(prefix))]
    targets = sorted(set(delayed_targets))
    delayed = [await _delayed_state(redis, target) for target in targets[:MAX_STREAMS]]
    leases = [await _lease_state(redis, role, prefix) for role in roles]
    return Snapshot(
        now_ms, tuple(s for s in states if s), tuple(delayed), tuple(leases), tuple(notes)
    )


async def _server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _stream_state(
    redis: Redis, stream: str, now_ms: int, only: frozenset[str] | None
) -> StreamState | None:
    pipe = redis.pipeline(transaction=False)
    pipe.exists(stream)
    pipe.xlen(stream)
    pipe.execute_command("XINFO", "STREAM", stream)
    pipe.execute_command("XINFO", "GROUPS", stream)
    exists, length, info, groups = await pipe.execute(raise_on_error=False)
    if not exists or isinstance(info, Exception):
        return None
    stream_info = as_dict(info)
    group_infos = [as_dict(item) for item in groups]
    if only is not None:
        group_infos = [info for info in group_infos if text(info["name"]) in only]
    pipe = redis.pipeline(transaction=False)
    for group_info in group_infos:
        group = text(group_info["name"])
        pipe.execute_command("XPENDING", stream, group)
        pipe.execute_command("XINFO", "CONSUMERS", stream, group)
        pipe.xlen(keys.dead_lane(stream, group))
        pipe.zcard(keys.delayed_store(keys.retry_lane(stream, group)))
    replies = await pipe.execute() if group_infos else []
    shaped = []
    for index, group_info in enumerate(group_infos):
        summary, consumers, dead, retry_waiting = replies[4 * index : 4 * index + 4]
        shaped.append(
            GroupState(
                stream=stream,
                group=text(group_info["name"]),
                lag=optional_int(group_info.get("lag")),
                pending=int(group_info["pending"]),
                oldest_pending_age_ms=pending_age_ms(summary, now_ms),
                entries_read=optional_int(group_info.get("entries-read")),
                consumers=consumers_of(consumers),
                dead_letters=int(dead),
                retry_waiting=int(retry_waiting),
            )
        )
    last_id = text(stream_info.get("last-generated-id", "0-0"))
    return StreamState(stream, int(length), last_id, tuple(sorted(shaped, key=lambda g: g.group)))


async def _delayed_state(redis: Redis, stream: str) -> DelayedState:
    store = keys.delayed_store(stream)
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(store)
    pipe.zrange(store, 0, BUCKETS_READ - 1, withscores=True)
    zcard, members = await pipe.execute()
    sampled: list[bytes] = [m if isinstance(m, bytes) else str(m).encode() for m, _ in members]
    refs = [member for member in sampled if member[:1].isdigit()]
    sizes: list[Any] = []
    if refs:
        pipe = redis.pipeline(transaction=False)
        for ref in refs:
            pipe.llen(keys.delayed_bucket(stream, int(ref)))
        sizes = await pipe.execute()
    entries, approximate = delayed_entries(int(zcard), sampled, [int(n) for n in sizes])
    next_due = int(members[0][1]) if members else None
    return DelayedState(stream, entries, approximate, next_due)


async def _lease_state(redis: Redis, role: str, prefix: str) -> LeaseState:
    pipe = redis.pipeline(transaction=False)
    pipe.get(keys.lease(role, prefix))
    pipe.pttl(keys.lease(role, prefix))
    holder, ttl_ms = await pipe.execute()
    return LeaseState(
        role, None if holder is None else text(holder), None if holder is None else int(ttl_ms)
    )
