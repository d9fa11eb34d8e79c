"""Schedules: a task fired by cron or every X, defined in code or at runtime, kept in Redis.

    @app.schedule(cron="*/5 * * * *", tz="Europe/Berlin")
    async def refresh_rates() -> None: ...

    schedules = Schedules(redis)                        # or app.connected() -> client.schedules
    await schedules.add("nightly-report", build_report, cron="0 2 * * *", tz="Europe/Berlin",
                        kwargs={"month": "current"}, catch_up=1)
    await schedules.pause("nightly-report"); await schedules.resume("nightly-report")
    await schedules.trigger("nightly-report"); await schedules.remove("nightly-report")

Each schedule is one hash (keys.schedule) holding its timetable, its task's encoded arguments,
its last fire and whether it is paused; the set keys.schedules names them all. The arguments are
encoded when the schedule is added, so the scheduler (the holder of the "scheduler" lease,
tasks/scheduler.py) fires any schedule without knowing its task's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from gristmill import keys
from gristmill.clock import SYSTEM_CLOCK
from gristmill.errors import ConfigError
from gristmill.tasks.client import ENQUEUE, task_args, task_fields
from gristmill.tasks.record import HashFields, first_items
from gristmill.tasks.timetable import Timetable, timetable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from redis.asyncio import Redis

    from gristmill.schemas.cache import SchemaCache
    from gristmill.tasks.declare import Task

MARKER_TTL_MS = 2 * 86_400_000  # how long a fire's marker says "enqueued already"
_INTS = ("every_ms", "anchor_ms", "catch_up", "last_fire_ms", "ttl_ms", "result_ttl_ms",
         "retries_allowed", "fires", "created_at", "updated_at")  # fmt: skip


@dataclass(frozen=True)
class Schedule:
    """One schedule as stored (keys.schedule)."""

    name: str
    task: str
    queue: str
    stream: str
    cron: str
    tz: str
    every_ms: int
    anchor_ms: int  # creation: `every` counts from it; nothing fires for times before it
    catch_up: int  # after an outage: 0 fires only the latest missed time, N the latest N
    paused: bool
    last_fire_ms: int
    fires: int
    schema_id: bytes
    payload: bytes
    tracked: bool
    target: str = ""
    ttl_ms: int = 0
    result_ttl_ms: int = 0
    retries_allowed: int = 0
    description: str = ""
    declared_by: str = ""
    created_at: int = 0
    updated_at: int = 0

    def timetable(self) -> Timetable:
        every = timedelta(milliseconds=self.every_ms) if self.every_ms else None
        return timetable(
            cron=self.cron or None, every=every, tz=self.tz or "UTC", anchor_ms=self.anchor_ms
        )

    def next_fire_ms(self) -> int:
        """The next time it fires after its last fire (or its creation)."""
        return self.timetable().next_after(max(self.last_fire_ms, self.anchor_ms))


def parse(fields: Mapping[bytes, bytes]) -> Schedule | None:
    """The schedule of HGETALL `fields`; None if there are none."""
    if not fields:
        return None
    read = HashFields(fields)
    string, text = read.text, read.raw
    numbers = read.numbers(_INTS)
    return Schedule(
        name=string("name"), task=string("task"), queue=string("queue"), stream=string("stream"),
        cron=string("cron"), tz=string("tz"), paused=string("paused") == "1",
        schema_id=text.get("schema_id", b""), payload=text.get("payload", b""),
        tracked=string("tracked") != "0", target=string("target"),
        description=string("description"), declared_by=string("declared_by"), **numbers,
    )  # fmt: skip


class Schedules:
    """Add, change, pause, resume, remove, trigger and list schedules (any process)."""

    def __init__(
        self, redis: Redis, cache: SchemaCache | None = None, prefix: str = keys.DEFAULT_PREFIX
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.prefix = prefix

    async def add(
        self,
        name: str,
        task: Task[Any, Any],
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        tz: str = "UTC",
        kwargs: Mapping[str, object] | None = None,
        catch_up: int = 0,
        paused: bool = False,
        declared_by: str = "",
    ) -> Schedule:
        """Create schedule `name` firing `task(**kwargs)`, or replace its definition (its
        last fire, fire count and creation time are kept: a change does not fire again
        what fired already).

        Raises:
            ConfigError: If the cron expression, zone or interval is wrong, or catch_up < 0.
            TypeError: If `kwargs` do not fit the task's parameters.
        """
        if not name or any(ch.isspace() or ch in "/@" for ch in name):
            raise ConfigError(f"schedule name {name!r}: no spaces, '/' or '@'")
        if catch_up < 0:
            raise ConfigError(f"schedule {name!r}: catch_up must be 0 or more")
        now_ms = SYSTEM_CLOCK.now_ms()
        timetable(cron=cron, every=every, tz=tz, anchor_ms=now_ms)  # refuses a bad one now
        spec = task.spec
        message = spec.signature.message_of((), dict(kwargs or {}))
        cache = self.cache or (task.client.cache if task.client is not None else None)
        if cache is None:
            raise ConfigError(f"schedule {name!r}: connect first (app.connected())")
        schema_id = await cache.id_for(message.DESCRIPTOR)
        every_ms = round(every.total_seconds() * 1000) if every is not None else 0
        key = keys.schedule(name, self.prefix)
        definition: dict[str, str | int | bytes] = {
            "name": name, "task": spec.name, "queue": spec.queue,
            "stream": spec.stream_for(message),
            "target": spec.target or "", "cron": cron or "", "tz": tz, "every_ms": every_ms,
            "catch_up": catch_up, "schema_id": schema_id,
            "payload": message.SerializeToString(), "tracked": int(spec.tracked),
            "ttl_ms": spec.ttl_ms, "result_ttl_ms": spec.result_ttl_ms,
            "retries_allowed": spec.retry.max_attempts - 1, "description": spec.description,
            "declared_by": declared_by, "updated_at": now_ms,
        }  # fmt: skip
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=definition)  # type: ignore[arg-type]
        pipe.hsetnx(key, "anchor_ms", now_ms)
        pipe.hsetnx(key, "created_at", now_ms)
        pipe.hsetnx(key, "paused", int(paused))
        pipe.sadd(keys.schedules(self.prefix), name)
        pipe.sadd(keys.task_queues(self.prefix), spec.stream_for(message))  # `runtime tasks`
        await pipe.execute()
        found = await self.get(name)
        assert found is not None
        return found

    async def get(self, name: str) -> Schedule | None:
        """Schedule `name`, or None."""
        fields = await self.redis.hgetall(keys.schedule(name, self.prefix))
        return parse(cast("dict[bytes, bytes]", fields))

    async def all(self) -> list[Schedule]:
        """Every schedule, by name."""
        names = sorted(cast("set[bytes]", await self.redis.smembers(keys.schedules(self.prefix))))
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.schedule(name.decode(), self.prefix))
        found = [parse(fields) for fields in await pipe.execute()]
        return [schedule for schedule in found if schedule is not None]

    async def _set(self, name: str, values: dict[str, int]) -> bool:
        key = keys.schedule(name, self.prefix)
        if not await self.redis.exists(key):
            return False
        await self.redis.hset(key, mapping={**values, "updated_at": SYSTEM_CLOCK.now_ms()})  # type: ignore[dict-item]
        return True

    async def pause(self, name: str) -> bool:
        """Stop firing `name` (False if there is no such schedule)."""
        return await self._set(name, {"paused": 1})

    async def resume(self, name: str) -> bool:
        """Fire `name` again from now on: the times that passed while it was paused do not fire."""
        return await self._set(name, {"paused": 0, "last_fire_ms": SYSTEM_CLOCK.now_ms()})

    async def remove(self, name: str) -> bool:
        """Delete schedule `name`; tasks it enqueued already stay (False if none)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.schedule(name, self.prefix))
        pipe.srem(keys.schedules(self.prefix), name)
        deleted, _ = await pipe.execute()
        return bool(deleted)

    async def trigger(self, name: str) -> str | None:
        """Enqueue one run of `name` now, outside its timetable; returns the task id."""
        found = await self.get(name)
        if found is None:
            return None
        now_ms = SYSTEM_CLOCK.now_ms()
        task_id = f"{name}@manual-{now_ms}"
        await fire(self.redis, found, now_ms, task_id=task_id, marker=False, prefix=self.prefix)
        return task_id


async def fire(
    redis: Redis,
    schedule: Schedule,
    fire_ms: int,
    *,
    task_id: str | None = None,
    marker: bool = True,
    prefix: str = keys.DEFAULT_PREFIX,
) -> bool:
    """Enqueue `schedule`'s task for `fire_ms`; False if that fire was enqueued already."""
    stream = schedule.stream
    task_id = task_id or f"{schedule.name}@{fire_ms}"
    fields = task_fields(schedule.schema_id, schedule.payload, schedule.task, task_id, [])
    record_keys = [keys.task_record(stream, task_id)] if schedule.tracked else []
    now_ms = SYSTEM_CLOCK.now_ms()
    items: list[bytes] = []
    if schedule.tracked:
        items = first_items(
            task_id=task_id, name=schedule.task, queue=schedule.queue, now_ms=now_ms,
            due_ms=None, schema_id=schedule.schema_id, payload=schedule.payload,
            retries_allowed=schedule.retries_allowed, ttl_ms=schedule.ttl_ms,
            result_ttl_ms=schedule.result_ttl_ms, target=schedule.target,
            description=schedule.description, schedule=schedule.name,
        )  # fmt: skip
    marker_keys = [keys.schedule_fired(stream, schedule.name, fire_ms)] if marker else []
    all_keys = [stream, keys.delayed_store(stream), *record_keys, *marker_keys]
    marker_index = len(all_keys) if marker else 0
    args: list[bytes | str | int] = [keys.delayed_wake(prefix), 0, marker_index, MARKER_TTL_MS, 1]
    args += task_args(3 if schedule.tracked else 0, fields, None, items)
    added = await ENQUEUE(redis, all_keys, args)
    return bool(added) and added[0] == 1
