"""Take one snapshot from Redis: a bounded number of pipelined commands, then `shape` it.

Per stream: XINFO STREAM and XINFO GROUPS; per group: XPENDING (summary), XINFO CONSUMERS,
XLEN of its dead-letter lane, ZCARD of its retry lane's delayed store; per delayed store: ZCARD,
its first member and at most `BUCKETS_READ` bucket sizes; per lease role: GET and PTTL.
Streams are those of the given apps, or found with SCAN TYPE stream (at most `MAX_STREAMS`).
Each kind of read is one pipeline for all streams, groups, stores or roles, so a snapshot costs
the same few round trips (TIME, SMEMBERS and 6 pipelines, plus the SCAN) however many streams
there are; the commands grow linearly with streams and groups.
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
    if len(names) > MAX_STREAMS:
        notes.append(f"{len(names) - MAX_STREAMS} more streams not shown")
    states = await _stream_states(redis, names[:MAX_STREAMS], now_ms, groups)
    if delayed_targets is None:
        delayed_targets = [text(t) for t in await redis.smembers(keys.delayed_targets(prefix))]
    delayed = await _delayed_states(redis, sorted(set(delayed_targets))[:MAX_STREAMS])
    leases = await _lease_states(redis, tuple(roles), prefix)
    return Snapshot(now_ms, states, delayed, leases, tuple(notes))


async def _server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _stream_states(
    redis: Redis, names: list[str], now_ms: int, groups: Mapping[str, frozenset[str]] | None
) -> tuple[StreamState, ...]:
    """Two round trips however many streams: the streams' replies, then their groups'."""
    pipe = redis.pipeline(transaction=False)
    for stream in names:
        pipe.exists(stream)
        pipe.xlen(stream)
        pipe.execute_command("XINFO", "STREAM", stream)
        pipe.execute_command("XINFO", "GROUPS", stream)
    replies = await pipe.execute(raise_on_error=False) if names else []
    found: list[tuple[str, int, dict[str, Any], list[dict[str, Any]]]] = []
    for index, stream in enumerate(names):
        exists, length, info, group_list = replies[4 * index : 4 * index + 4]
        if not exists or isinstance(info, Exception):
            continue  # gone since the scan, or not a stream
        group_infos = [as_dict(item) for item in group_list]
        if groups is not None:
            only = groups.get(stream, _NONE)
            group_infos = [g for g in group_infos if text(g["name"]) in only]
        found.append((stream, int(length), as_dict(info), group_infos))
    pipe = redis.pipeline(transaction=False)
    for stream, _, _, group_infos in found:
        for group_info in group_infos:
            group = text(group_info["name"])
            pipe.execute_command("XPENDING", stream, group)
            pipe.execute_command("XINFO", "CONSUMERS", stream, group)
            pipe.xlen(keys.dead_lane(stream, group))
            pipe.zcard(keys.delayed_store(keys.retry_lane(stream, group)))
    group_replies = iter(await pipe.execute() if any(g for *_, g in found) else [])
    states = []
    for stream, length, stream_info, group_infos in found:
        shaped = []
        for group_info in group_infos:
            summary, consumers, dead, retry_waiting = (next(group_replies) for _ in range(4))
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
        groups_sorted = tuple(sorted(shaped, key=lambda g: g.group))
        states.append(StreamState(stream, length, last_id, groups_sorted))
    return tuple(states)


async def _delayed_states(redis: Redis, targets: list[str]) -> tuple[DelayedState, ...]:
    """Two round trips however many stores: sizes and first members, then bucket lengths."""
    pipe = redis.pipeline(transaction=False)
    for target in targets:
        store = keys.delayed_store(target)
        pipe.zcard(store)
        pipe.zrange(store, 0, BUCKETS_READ - 1, withscores=True)
    replies = await pipe.execute() if targets else []
    sampled_of: list[list[bytes]] = []
    pipe = redis.pipeline(transaction=False)
    for index, target in enumerate(targets):
        members = replies[2 * index + 1]
        sampled = [m if isinstance(m, bytes) else str(m).encode() for m, _ in members]
        sampled_of.append(sampled)
        for ref in (member for member in sampled if member[:1].isdigit()):
            pipe.llen(keys.delayed_bucket(target, int(ref)))
    sizes = iter(await pipe.execute() if len(pipe) else [])
    states = []
    for index, target in enumerate(targets):
        zcard, members = replies[2 * index], replies[2 * index + 1]
        sampled = sampled_of[index]
        bucket_sizes = [int(next(sizes)) for member in sampled if member[:1].isdigit()]
        entries, approximate = delayed_entries(int(zcard), sampled, bucket_sizes)
        next_due = int(members[0][1]) if members else None
        states.append(DelayedState(target, entries, approximate, next_due))
    return tuple(states)


async def _lease_states(
    redis: Redis, roles: tuple[str, ...], prefix: str
) -> tuple[LeaseState, ...]:
    pipe = redis.pipeline(transaction=False)
    for role in roles:
        pipe.get(keys.lease(role, prefix))
        pipe.pttl(keys.lease(role, prefix))
    replies = await pipe.execute() if roles else []
    states = []
    for index, role in enumerate(roles):
        holder, ttl_ms = replies[2 * index : 2 * index + 2]
        states.append(
            LeaseState(
                role,
                None if holder is None else text(holder),
                None if holder is None else int(ttl_ms),
            )
        )
    return tuple(states)
