"""Find task records for people and tools: by id across queues, filtered, or the newest of each
queue (read-only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from gristmill import keys
from gristmill.envelope import TASK
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


async def newest(
    redis: Redis, *, prefix: str = keys.DEFAULT_PREFIX, limit: int
) -> list[TaskRecord]:
    """The records of the tasks most recently entered into each queue, newest first, at most
    `limit`: the last `limit` entries of every queue stream, then their records, in two
    pipelines. Unlike `listing` it reads a bounded number of keys however many records exist
    (a dashboard's view; a task whose record expired, or untracked, is left out)."""
    streams = await queue_streams(redis, prefix)
    if not streams:
        return []
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xrevrange(stream, count=limit)
    wanted: dict[str, None] = {}  # record keys in order, each once (a retry re-enters its id)
    for stream, entries in zip(streams, await pipe.execute(), strict=True):
        for _, fields in cast("list[tuple[bytes, dict[bytes, bytes]]]", entries):
            name_and_id = fields.get(TASK)
            if name_and_id and b"/" in name_and_id:
                task_id = name_and_id.split(b"/", 1)[1].decode(errors="replace")
                wanted.setdefault(keys.task_record(stream, task_id))
    pipe = redis.pipeline(transaction=False)
    for key in wanted:
        pipe.hgetall(key)
    found = [records.parse(fields) for fields in await pipe.execute()] if wanted else []
    present = [record for record in found if record is not None]
    present.sort(key=lambda record: record.created_at, reverse=True)
    return present[:limit]
