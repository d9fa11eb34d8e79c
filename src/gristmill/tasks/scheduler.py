"""The scheduler: every replica runs one; the holder of the "scheduler" lease fires schedules.

Each fire (schedules.fire) is one task_enqueue.lua call whose fire marker (keys.schedule_fired: schedule and
fire time, in the queue's slot, kept two days) is set in the same script that enqueues the
task, and the task's id is `<schedule>@<fire ms>`. So a fire happens once however often it is
tried: a leader that dies after enqueueing and before noting its last fire makes its successor
try the same fire again, which the marker refuses. A paused ex-leader that wakes up and fires
is refused the same way: no fencing token is needed for exactly-once fires.

While leader it sleeps until the earliest next fire of any schedule (at most 1 s, so schedules
added, changed or paused elsewhere are seen within a second), then fires what is due: per
schedule every time in (last fire, now] of the grace window (lease ttl + renew interval + 1 s:
times a failover or the wake-up made late are fired late, never dropped); times older than that
were missed (an outage, a pause): the latest `catch_up` of them fire, or with catch_up 0 the
latest one only when no recent time is due (a daily job missed by an outage runs once).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
from redis.exceptions import RedisError

from gristmill import keys
from gristmill.clock import SYSTEM_CLOCK
from gristmill.errors import ConfigError
from gristmill.tasks.schedules import Schedules, fire
from gristmill.tasks.timetable import due_fires
from gristmill.timing.leader import Lease

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.tasks.timetable import Timetable

log = logging.getLogger(__name__)

ROLE = "scheduler"
MAX_RECENT = 1000  # fire times per schedule and pass within the grace window
LONGEST_SLEEP_S = 1.0


class Scheduler:
    """Competes for the scheduler lease and, while leader, fires every due schedule."""

    def __init__(self, redis: Redis, *, ttl_ms: int = 2000, prefix: str = keys.DEFAULT_PREFIX):
        self.redis = redis
        self.prefix = prefix
        self.schedules = Schedules(redis, prefix=prefix)
        self.lease = Lease(redis, ROLE, ttl_ms=ttl_ms, prefix=prefix)
        self.fired = 0  # fires this process enqueued (health, tests)
        # a failover takes up to ttl + one renew interval, a wake-up up to LONGEST_SLEEP_S
        self.grace_ms = ttl_ms + self.lease.renew_ms + round(LONGEST_SLEEP_S * 1000)

    async def run(self) -> None:
        """Fire while leader, wait while not, forever; returns only by cancellation."""
        while True:
            try:
                acquired = await self.lease.acquire()
            except (RedisError, OSError) as exc:
                log.warning("scheduler lease: cannot reach the server: %s", exc)
                acquired = False
            if acquired:
                async with self.lease.hold():
                    await self._fire_while_leader()
            await anyio.sleep(self.lease.renew_ms / 1000)

    async def _fire_while_leader(self) -> None:
        while True:
            try:
                sleep_s = await self.fire_due()
            except (RedisError, OSError) as exc:
                log.warning("scheduler pass failed, retrying: %s", exc)
                sleep_s = self.lease.renew_ms / 1000
            await anyio.sleep(sleep_s)

    def _due(self, table: Timetable, since_ms: int, now_ms: int, catch_up: int) -> list[int]:
        """Fire times in (since, now]: all of the last `grace_ms` (the scheduler's own wake-up
        and a failover take that long: those are late, not missed); of the older ones, the
        latest `catch_up`, or with catch_up 0 the latest one only if nothing recent is due."""
        recent_from = max(since_ms, now_ms - self.grace_ms)
        recent = due_fires(table, last_fire_ms=recent_from, now_ms=now_ms, catch_up=MAX_RECENT)
        if since_ms >= recent_from:
            return recent
        if catch_up == 0 and recent:
            return recent
        older = due_fires(
            table, last_fire_ms=since_ms, now_ms=recent_from, catch_up=max(catch_up, 1)
        )
        return older + recent

    async def fire_due(self) -> float:
        """Fire every due fire of every schedule; returns the seconds until the next one."""
        now_ms = SYSTEM_CLOCK.now_ms()
        next_ms = now_ms + round(LONGEST_SLEEP_S * 1000)
        for schedule in await self.schedules.all():
            if schedule.paused:
                continue
            try:
                table = schedule.timetable()
            except ConfigError as exc:  # a definition written by hand, or a zone gone
                log.error("schedule %s cannot fire: %s", schedule.name, exc)
                continue
            since = max(schedule.last_fire_ms, schedule.anchor_ms)
            due = self._due(table, since, now_ms, schedule.catch_up)
            key = keys.schedule(schedule.name, self.prefix)
            for fire_ms in due:
                if await fire(self.redis, schedule, fire_ms, prefix=self.prefix):
                    self.fired += 1
                    await self.redis.hincrby(key, "fires", 1)
            if due:
                await self.redis.hset(key, "last_fire_ms", due[-1])
                since = due[-1]
            next_ms = min(next_ms, table.next_after(max(since, now_ms)))
        return max(next_ms - SYSTEM_CLOCK.now_ms(), 0) / 1000 + 0.001
