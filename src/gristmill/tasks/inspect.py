"""Find task records for people and tools: by id across queues, or filtered (read-only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from gristmill import keys
from gristmill.tasks import record as records

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from redis.asyncio import Redis

    from gristmill.tasks.record import TaskRecord

SCAN_COUNT = 1000


async def queue_streams(redis: Redis, prefix: str = keys.DEFAULT_PREFIX) -> list[str]:
    """Every task queue stream something was enqueued to (sorted)."""
    members = cast("set[bytes]", await redis.smembers(keys.task_queues(prefix)))
    return sorted(member.decode() for member in members)


async def find(redis: Redis, task_id: str, prefix: str = keys.DEFAULT_PREFIX) -> TaskRecord | None:
    """The record of `task_id`, whichever queue it is in; None if there is none."""
    for stream in await queue_streams(redis, prefix):
        fields = cast("dict[bytes, bytes]", await redis.hgetall(keys.task_record(stream, task_id)))
        found = records.parse(fields)
        if found is not None:
            return found
    return None


async def listing(
    redis: Redis,
    *,
    prefix: str = keys.DEFAULT_PREFIX,
    filters: Mapping[str, str | None],
    limit: int,
) -> list[TaskRecord]:
    """Records whose fields equal every given filter (state, queue, target, name), newest first,
    at most `limit`. Scans each queue's records (SCAN, then HGETALL in pipelines)."""
    wanted = {name: value for name, value in filters.items() if value}
    found: list[TaskRecord] = []
    for stream in await queue_streams(redis, prefix):
        pattern = keys.task_record_pattern(stream)
        async for batch in _scan_batches(redis, pattern):
            pipe = redis.pipeline(transaction=False)
            for key in batch:
                pipe.hgetall(key)
            for fields in await pipe.execute():
                record = records.parse(fields)
                if record is not None and all(
                    getattr(record, name) == value for name, value in wanted.items()
                ):
                    found.append(record)
    found.sort(key=lambda record: record.created_at, reverse=True)
    return found[:limit]


async def _scan_batches(redis: Redis, pattern: str) -> AsyncIterator[list[bytes]]:
    cursor = 0
    while True:
        cursor, batch = await redis.scan(cursor, match=pattern, count=SCAN_COUNT)
        if batch:
            yield cast("list[bytes]", batch)
        if cursor == 0:
            return
