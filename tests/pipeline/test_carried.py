"""What an entry carries on the wire to its context and its outputs: requeues, key, trace;
and where a class lane's readers start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill import App
from gristmill.keys import class_lane, is_class_lane
from gristmill.producer import Publisher
from gristmill.settings import Settings
from gristmill.testing import run_until_idle
from gristmill.timing.delayed import DelayedStore
from tests.pipeline.messages import Order
from tests.typed_redis import raw, xrange

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer


async def test_requeue_once_is_possible_because_requeues_are_counted(
    server: EmbeddedServer, redis: Redis
) -> None:
    seen: list[tuple[int, int]] = []
    app = App("once")

    @app.processor(input="jobs", output="done", from_beginning=True)
    async def work(order: Any, ctx: Context) -> Any:
        seen.append((ctx.attempt, ctx.requeues))
        if ctx.requeues == 0:
            ctx.requeue(delay=0.05)  # once: the count survives the trip through the lane
            return None
        return order

    await Publisher(redis).publish("jobs", Order(id="j", sku="x"))
    settings = Settings(block_ms=50, claim_idle=5.0, delayed_bucket_ms=10)
    result = await run_until_idle(app, url=server.url, redis=redis, settings=settings)
    done: list[Any] = await result.published("done")
    assert [o.id for o in done] == ["j"]
    assert seen == [(1, 0), (1, 1)]


async def test_key_and_trace_context_reach_the_context_and_the_outputs(
    server: EmbeddedServer, redis: Redis
) -> None:
    seen: list[tuple[Any, dict[str, str], dict[str, str]]] = []
    app = App("carry")

    @app.processor(input="orders", output="copies", from_beginning=True)
    async def copy(order: Any, ctx: Context) -> Any:
        seen.append((ctx.key, dict(ctx.trace), dict(ctx.headers)))
        return order

    fields = await Publisher(redis).fields(Order(id="o", sku="x"))
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await raw(
        redis, "XADD", "orders", "*", *fields, "key", "customer-7", "traceparent", parent,
        "tracestate", "gm=1", "h:source", "web",
    )  # fmt: skip
    await run_until_idle(app, url=server.url, redis=redis, settings=Settings(block_ms=50))
    assert seen == [
        (b"customer-7", {"traceparent": parent, "tracestate": "gm=1"}, {"source": "web"})
    ]
    [(_, out)] = await xrange(redis, "copies")
    assert out[b"key"] == b"customer-7"
    assert out[b"traceparent"] == parent.encode()
    assert out[b"tracestate"] == b"gm=1"
    assert b"h:source" not in out  # user headers describe the input; they are not carried


async def test_an_unsampled_trace_context_is_not_carried_on(
    server: EmbeddedServer, redis: Redis
) -> None:
    # as Publisher never writes one: only sampled traces cost bytes in the streams downstream
    seen: list[dict[str, str]] = []
    app = App("carry")

    @app.processor(input="orders", output="copies", from_beginning=True)
    async def copy(order: Any, ctx: Context) -> Any:
        seen.append(dict(ctx.trace))
        return order

    fields = await Publisher(redis).fields(Order(id="o", sku="x"))
    unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    await raw(redis, "XADD", "orders", "*", *fields, "traceparent", unsampled)
    await raw(redis, "XADD", "orders", "*", *fields, "key", "k", "traceparent", unsampled,
              "tracestate", "gm=1")  # fmt: skip
    await run_until_idle(app, url=server.url, redis=redis, settings=Settings(block_ms=50))
    assert seen == [{}, {}]
    outputs = [fields for _, fields in await xrange(redis, "copies")]
    assert [sorted(out) for out in outputs] == [
        [b"payload", b"schema_id"], [b"key", b"payload", b"schema_id"]
    ]  # fmt: skip


async def test_a_publisher_built_from_settings_registers_under_their_prefix(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis, settings=Settings(key_prefix="acme:"))
    await publisher.publish("orders", Order(id="o", sku="x"))
    assert publisher.registry.prefix == publisher.store.prefix == "acme:"
    assert await redis.keys("gm:*") == []
    assert await redis.keys("acme:*")


async def test_a_tickers_large_output_is_compressed_like_a_processors(
    server: EmbeddedServer, redis: Redis
) -> None:
    import anyio

    from gristmill.runtime import Runtime

    app = App("ticking")

    @app.processor(input="ticks")  # a runtime runs while its processors do
    async def read(order: Any, ctx: Context) -> None:
        return None

    @app.every(0.05, output="ticks")
    async def tick() -> Any:
        return Order(id="t", sku="x" * 10_000)

    runtime = Runtime(app, Settings(block_ms=50), server.url)
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        with anyio.fail_after(30):
            while not await redis.xlen("ticks"):
                await anyio.sleep(0.05)
        runtime.stop()
    [(_, fields), *_] = await xrange(redis, "ticks")
    assert fields[b"encoding"] == b"zstd"
    assert len(fields[b"payload"]) < 1000


async def test_a_class_lane_input_reads_what_was_released_before_its_group_existed(
    server: EmbeddedServer, redis: Redis
) -> None:
    # the sweeper may release long jobs before the first deploy of their processor: a class
    # lane holds nothing but released entries, so its group starts at the lane's beginning
    app = App("classes")
    lane = class_lane("orders", "long")

    @app.processor(input=lane, output="done")  # from_beginning left at its default
    async def slow(order: Any, ctx: Context) -> Any:
        return order

    await Publisher(redis).schedule("orders", Order(id="early", sku="x"), delay=0.0,
                                    execution_class="long")  # fmt: skip
    assert await DelayedStore(redis).move_now(lane) == 1  # released before the group exists
    result = await run_until_idle(app, url=server.url, redis=redis, settings=Settings(block_ms=50))
    done: list[Any] = await result.published("done")
    assert [o.id for o in done] == ["early"]


def test_only_class_lanes_are_recognised_as_class_lanes() -> None:
    assert is_class_lane(class_lane("orders", "long"))
    assert is_class_lane(class_lane("{eu}.orders", "short-2"))
    assert not is_class_lane("orders")
    assert not is_class_lane("orders:class:long")  # no hash tag: a user's own stream name
    assert not is_class_lane("{orders}:class:Long")  # not a class name
