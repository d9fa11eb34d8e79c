"""Schedules on a real server: declared and added at runtime, paused, triggered, removed; each
fire time enqueued once even with several schedulers competing."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill import App, keys
from gristmill.errors import ConfigError
from gristmill.settings import Settings
from gristmill.tasks import inspect
from gristmill.tasks.scheduler import Scheduler
from gristmill.tasks.schedules import Schedules, fire

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

FAST = Settings(block_ms=50, health_port=0, lease_ttl_ms=600)


async def fired_ids(redis: Redis, schedule: str) -> list[int]:
    """The fire times of `schedule`'s tasks, from their records (ids `<schedule>@<ms>`)."""
    records = await inspect.listing(redis, filters={"schedule": schedule}, limit=10_000)
    return sorted(int(r.id.partition("@")[2]) for r in records if "manual" not in r.id)


async def test_a_declared_schedule_fires_every_interval_once(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("clock")
    runs: list[str] = []

    @app.schedule(every=timedelta(milliseconds=300))
    async def tick() -> str:
        runs.append("tick")
        return "tock"

    async with app.running(url=server.url, settings=FAST):
        await anyio.sleep(2.0)
        fires = await fired_ids(redis, "tick")
        record = await tick.handle(f"tick@{fires[0]}").result(timeout=5)
        assert record == "tock"
    fires = await fired_ids(redis, "tick")
    stored = await Schedules(redis).get("tick")
    assert stored is not None
    assert 4 <= len(fires) <= 7
    assert fires == [stored.anchor_ms + 300 * k for k in range(1, len(fires) + 1)]
    assert stored.fires == len(fires)
    assert stored.last_fire_ms == fires[-1]
    assert stored.declared_by == "clock"
    (first,) = await inspect.listing(redis, filters={"id": f"tick@{fires[0]}"}, limit=1)
    assert (first.kind, first.schedule, first.result) == ("scheduled", "tick", '"tock"')


async def test_schedules_added_paused_resumed_and_removed_while_running(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("dynamic")
    seen: list[str] = []

    @app.task(queue="dyn")
    async def note(word: str) -> None:
        seen.append(word)

    async with app.running(url=server.url, settings=FAST) as runtime:
        schedules = Schedules(redis, runtime.cache)
        await schedules.add("fast", note, every=timedelta(milliseconds=200), kwargs={"word": "hi"})
        await anyio.sleep(1.1)
        assert await schedules.pause("fast")
        paused_at = len(await fired_ids(redis, "fast"))
        assert paused_at >= 3
        await anyio.sleep(0.8)
        assert len(await fired_ids(redis, "fast")) == paused_at  # nothing while paused
        assert await schedules.resume("fast")  # from now on: the paused times do not fire
        await anyio.sleep(0.5)
        resumed = len(await fired_ids(redis, "fast"))
        assert paused_at + 1 <= resumed <= paused_at + 3
        manual = await schedules.trigger("fast")
        assert manual is not None
        assert manual.startswith("fast@manual-")
        assert await schedules.remove("fast")
        await anyio.sleep(0.6)
        after_remove = len(await fired_ids(redis, "fast"))
        await anyio.sleep(0.6)
        assert len(await fired_ids(redis, "fast")) == after_remove
        assert await note.handle(manual).result(timeout=5) is None
    assert set(seen) == {"hi"}
    assert not await schedules.remove("fast")
    with pytest.raises(ConfigError, match="no spaces"):
        await schedules.add("a b", note, every=timedelta(seconds=1), kwargs={"word": "x"})
    with pytest.raises(TypeError, match="missing argument 'word'"):
        await schedules.add("ok", note, every=timedelta(seconds=1))


async def test_competing_schedulers_and_retried_fires_enqueue_each_time_once(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("race")

    @app.task(queue="race")
    async def ping() -> None: ...

    async with app.connected(url=server.url, settings=FAST) as client:
        schedules = Schedules(redis, client.cache)
        stored = await schedules.add("race", ping, every=timedelta(milliseconds=100))
        schedulers = [Scheduler(redis, ttl_ms=300) for _ in range(3)]
        async with anyio.create_task_group() as group:
            for scheduler in schedulers:
                group.start_soon(scheduler.run)
            await anyio.sleep(1.5)
            group.cancel_scope.cancel()
        assert sum(1 for s in schedulers if s.fired) == 1  # one leader all along
        fires = await fired_ids(redis, "race")
        assert fires == [stored.anchor_ms + 100 * k for k in range(1, len(fires) + 1)]
        again = await schedules.get("race")
        assert again is not None
        # a successor retrying a fire its predecessor enqueued adds nothing (the fire marker)
        assert not await fire(redis, again, fires[0])
        assert await redis.xlen(keys.task_queue("race")) == len(fires)


def test_bad_schedules_fail_at_declaration() -> None:
    app = App("bad")
    with pytest.raises(ConfigError, match="cron"):
        app.schedule(cron="61 * * * *")
    with pytest.raises(ConfigError):
        app.schedule(cron="* * * * *", tz="Mars/Olympus")
    with pytest.raises(ConfigError):
        app.schedule()
    with pytest.raises(ConfigError, match="called with no arguments"):

        @app.schedule(every=timedelta(seconds=1))
        async def needs(word: str) -> None: ...
