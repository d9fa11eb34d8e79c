"""Reading streams back in tests, typed (redis-py types XRANGE replies loosely)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def read_entries(redis: Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of `stream` as (entry id, fields), oldest first."""
    return cast("list[tuple[bytes, dict[bytes, bytes]]]", await redis.xrange(stream))


async def read_fields(redis: Redis, stream: str) -> list[list[bytes]]:
    """Every entry's flat [name, value, ...] fields."""
    return [
        [item for pair in fields.items() for item in pair]
        for _, fields in await read_entries(redis, stream)
    ]


async def payload_counts(redis: Redis, *streams: str) -> Counter[int]:
    """How often each integer payload appears across `streams`."""
    seen: Counter[int] = Counter()
    for stream in streams:
        for _, fields in await read_entries(redis, stream):
            seen[int(fields[b"payload"])] += 1
    return seen
