"""A runtime's own metrics: its sweeper's moves, its delayed stores, its subjects' versions."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from gristmill import App, Retry, keys
from gristmill.producer import Publisher
from gristmill.runtime import Runtime
from gristmill.schemas.build import SchemaBuilder
from gristmill.settings import Settings
from tests.pipeline.messages import Order
from tests.telemetry.probes import free_port, get_async, metric_samples

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer

SOON, LATER = 30, 7  # retried after 0.2 s (the sweeper moves them back), or after 120 s
LANE = keys.retry_lane("orders", "parker.park")


def _parker() -> App:
    app = App("parker")

    @app.processor(input="orders", output="done", from_beginning=True)
    async def park(order: Any, ctx: Context) -> Any:
        if ctx.attempt == 1:
            raise Retry(delay=120 if order.sku == "later" else 0.2)
        return order

    return app


OURS = ("gristmill_sweeper", "gristmill_delayed", "gristmill_schema_versions")


async def test_metrics_show_the_sweep_and_what_waits_in_the_delayed_store(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis)
    await publisher.publish_many("orders", [Order(id=f"s{n}", sku="soon") for n in range(SOON)])
    await publisher.publish_many("orders", [Order(id=f"l{n}", sku="later") for n in range(LATER)])
    port = free_port()
    runtime = Runtime(_parker(), Settings(block_ms=50, health_port=port), server.url)
    parked_at = time.time()
    seen: dict[str, float] = {}
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        with anyio.fail_after(30):
            while await redis.xlen("done") < SOON:
                await anyio.sleep(0.05)
            waiting = f'gristmill_delayed_entries{{stream="{LANE}"}}'
            while seen.get(waiting) != LATER:  # the sampler runs every 5 s
                await anyio.sleep(0.2)
                status, body = await get_async(f"http://127.0.0.1:{port}/metrics")
                assert status == 200
                seen = metric_samples(body, *OURS)
        runtime.stop()
    assert seen["gristmill_sweeper_moved_total"] >= SOON  # the soon ones came back through it
    assert seen["gristmill_sweeper_batches_total"] >= 1
    assert seen["gristmill_sweeper_refused_total"] == 0
    next_due = seen[f'gristmill_delayed_next_due_seconds{{stream="{LANE}"}}']
    elapsed = time.time() - parked_at
    assert 120 - elapsed - 2 <= next_due <= 120 + 1, (next_due, elapsed)  # 1 s buckets


async def test_metrics_count_the_versions_of_each_declared_subject(
    server: EmbeddedServer, redis: Redis
) -> None:
    def reading(extra: bool) -> Any:
        schema = SchemaBuilder("tests/meter.proto", package="tests.meter")
        message = schema.message("Reading")
        message.field("value", 1, "int64")
        if extra:
            message.field("unit", 2, "string")  # a compatible change: version 2
        return schema.build()

    await Publisher(redis).publish("readings", reading(False)["tests.meter.Reading"](value=1))
    app = App("meter", schemas=[reading(True)])

    @app.processor(input="readings", output="readings.seen")
    async def see(message: Any, ctx: Context) -> Any:
        return message

    port = free_port()
    runtime = Runtime(app, Settings(block_ms=50, health_port=port), server.url)
    seen: dict[str, float] = {}
    versions = 'gristmill_schema_versions{subject="tests.meter.Reading"}'
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        with anyio.fail_after(20):
            while seen.get(versions) != 2:  # a sample may precede the app's registration
                await anyio.sleep(0.2)
                status, body = await get_async(f"http://127.0.0.1:{port}/metrics")
                seen = metric_samples(body, *OURS) if status == 200 else {}
        runtime.stop()
    # the publisher's version and the app's own, as the registry holds them
    assert await redis.llen(keys.subject_versions("tests.meter.Reading")) == seen[versions]
