"""Retention for the first stream of a pipeline (Publisher) and for dead-letter lanes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from gristmill import App, DeadLetter, keys
from gristmill import runtime as runtime_module
from gristmill.producer import Publisher
from gristmill.runtime import Runtime
from gristmill.settings import Settings
from tests.pipeline.messages import Order

if TYPE_CHECKING:
    import pytest
    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer


async def test_publish_with_maxlen_trims_but_keeps_what_a_group_has_not_read(
    redis: Redis,
) -> None:
    publisher = Publisher(redis)
    for number in range(1000):
        await publisher.publish("first", Order(id=f"o-{number}"), maxlen=100)
    assert await redis.xlen("first") < 1000  # trimmed by whole nodes: about maxlen and a node
    await redis.xgroup_create("first", "reader", id="$")
    for number in range(1000):
        await publisher.publish("first", Order(id=f"n-{number}"), maxlen=100)
    unread = await redis.xlen("first")
    assert unread >= 1000  # the guard: nothing the group has not read goes


async def test_dead_letter_lanes_are_trimmed_to_their_setting(
    server: EmbeddedServer, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "UPKEEP_INTERVAL_S", 0.1)
    app = App("poison")

    @app.processor(input="orders", from_beginning=True)
    async def refuse(order: Any, ctx: Context) -> None:
        raise DeadLetter(reason="bad")

    publisher = Publisher(redis)
    settings = Settings(block_ms=50, dead_letter_maxlen=100)
    runtime = Runtime(app, settings, server.url)
    lane = keys.dead_lane("orders", "poison.refuse")
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        with anyio.fail_after(60):
            await runtime.wait_ready()
            for chunk in range(10):  # spread over time: the trim finds its cut by id time
                await publisher.publish_many(
                    "orders", [Order(id=f"o-{chunk}-{n}") for n in range(100)]
                )
                await anyio.sleep(0.05)
            while (await redis.xpending("orders", "poison.refuse"))["pending"] or (
                await redis.xlen(lane) > 300 or not await redis.exists(lane)
            ):
                await anyio.sleep(0.1)
        runtime.stop()
    info = await redis.xinfo_stream(lane)
    assert info["entries-added"] == 1000  # every entry was dead-lettered
    assert await redis.xlen(lane) <= 300  # and the lane kept about the newest 100
