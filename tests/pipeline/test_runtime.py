from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from gristmill import App, DeadLetter, keys
from gristmill.errors import ConfigError
from gristmill.failures.policy import RetryPolicy
from gristmill.producer import Publisher
from gristmill.runtime import Runtime
from gristmill.schemas.ids import schema_id_of
from gristmill.schemas.registry import SchemaRegistry
from gristmill.settings import Settings
from gristmill.testing import RunResult, run_until_idle
from tests.pipeline.messages import Invoice, Order, nested_payload
from tests.typed_redis import raw, xrange

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer

FAST = Settings(block_ms=50, claim_idle=1.0, grace=5.0)


def billing_app() -> App:
    app = App("billing")

    @app.processor(input="orders", output="invoices", side_outputs="audit", from_beginning=True)
    async def bill(order: Any, ctx: Context) -> Any:
        if order.quantity < 0:
            raise DeadLetter(reason="negative_quantity")
        if order.quantity == 0:
            return None
        if order.sku == "two":
            ctx.publish("audit", order)
        return Invoice(order_id=order.id, total_cents=order.quantity * 250)

    return app


async def test_orders_become_invoices(server: EmbeddedServer, redis: Redis) -> None:
    publisher = Publisher(redis)
    await publisher.publish_many(
        "orders", [Order(id=f"o-{n}", sku="tea", quantity=n + 1) for n in range(50)]
    )
    result = await run_until_idle(billing_app(), url=server.url, redis=redis, settings=FAST)
    invoices: list[Any] = await result.published("invoices")
    assert [(i.order_id, i.total_cents) for i in invoices] == [
        (f"o-{n}", (n + 1) * 250) for n in range(50)
    ]
    assert (await redis.xpending("orders", "billing.bill"))["pending"] == 0


async def test_none_publishes_nothing_and_ctx_publish_adds_outputs(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis)
    await publisher.publish("orders", Order(id="zero", sku="tea", quantity=0))
    await publisher.publish("orders", Order(id="two", sku="two", quantity=1))
    result = await run_until_idle(billing_app(), url=server.url, redis=redis, settings=FAST)
    invoices: list[Any] = await result.published("invoices")
    audit: list[Any] = await result.published("audit")
    assert [i.order_id for i in invoices] == ["two"]
    assert [o.id for o in audit] == ["two"]


async def test_bad_entries_are_dead_lettered_with_a_reason(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis)
    good = await publisher.fields(Order(id="good", sku="tea", quantity=1))
    await raw(redis, "XADD", "orders", "*", *good)
    schema_id = good[1]
    bad: dict[str, list[bytes]] = {
        "missing_field": [b"payload", b"x"],
        "unknown_schema": [b"schema_id", b"nope", b"payload", b"x"],
        "decode_error": [b"schema_id", schema_id, b"payload", b"\xff\xff\xff\xff"],
        "oversize": [b"schema_id", schema_id, b"payload", b"x" * 5000],
    }
    for fields in bad.values():
        await raw(redis, "XADD", "orders", "*", *fields)
    await publisher.publish("orders", Order(id="neg", sku="tea", quantity=-1))
    settings = Settings(block_ms=50, claim_idle=1.0, max_entry_bytes=4096)
    result = await run_until_idle(billing_app(), url=server.url, redis=redis, settings=settings)
    invoices: list[Any] = await result.published("invoices")
    assert [i.order_id for i in invoices] == ["good"]
    dead = await xrange(redis, "{orders}:dead:billing.bill")
    assert [fields[b"dl:reason"].decode() for _, fields in dead] == [*bad, "negative_quantity"]
    assert (await redis.xpending("orders", "billing.bill"))["pending"] == 0


async def test_an_entry_written_just_after_its_schema_s_registration_is_decoded(
    server: EmbeddedServer, redis: Redis
) -> None:
    # the runtime meets an id before anyone registered it (a producer that writes first) and
    # remembers the miss; a registration must end that at once, not after the negative ttl
    schema_id = schema_id_of(Order.DESCRIPTOR).encode()
    payload = Order(id="late", sku="tea", quantity=2).SerializeToString()
    fields = [b"schema_id", schema_id, b"payload", payload]
    runtime = Runtime(billing_app(), FAST, server.url)
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        with anyio.fail_after(10):
            await runtime.wait_ready()
            await raw(redis, "XADD", "orders", "*", *fields)
            dead = keys.dead_lane("orders", "billing.bill")
            while not await redis.xlen(dead):
                await anyio.sleep(0.02)
            assert runtime.cache.stats()["negative_entries"] == 1
            started = anyio.current_time()
            await SchemaRegistry(redis).register(Order.DESCRIPTOR)  # the registration path
            assert await redis.hexists(keys.schemas(), schema_id.decode())
            await raw(redis, "XADD", "orders", "*", *fields)
            while not await redis.xlen("invoices"):
                await anyio.sleep(0.02)
            assert anyio.current_time() - started < 5.0  # well inside the negative ttl
        runtime.stop()
    invoices: list[Any] = await RunResult(runtime, redis).published("invoices")
    assert [i.order_id for i in invoices] == ["late"]
    assert await redis.xlen(dead) == 1  # only the entry written before the registration


async def test_deep_nesting_is_dead_lettered(server: EmbeddedServer, redis: Redis) -> None:
    from tests.pipeline.messages import Node

    app = App("deep")

    @app.processor(input="nodes", from_beginning=True)
    async def swallow(node: Any, ctx: Context) -> None:
        return None

    schema_id = await Publisher(redis).schema_id(Node.DESCRIPTOR)
    await redis.xadd("nodes", {"schema_id": schema_id, "payload": nested_payload(50)})
    await redis.xadd("nodes", {"schema_id": schema_id, "payload": nested_payload(500)})
    await run_until_idle(app, url=server.url, redis=redis, settings=FAST)
    dead = await xrange(redis, "{nodes}:dead:deep.swallow")
    assert [fields[b"dl:reason"] for _, fields in dead] == [b"decode_depth"]


async def test_handler_must_declare_the_streams_it_publishes_to(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("strict")

    @app.processor(
        input="orders", output="invoices", from_beginning=True, retry=RetryPolicy(max_attempts=1)
    )
    async def sneaky(order: Any, ctx: Context) -> None:
        ctx.publish("elsewhere", order)

    await Publisher(redis).publish("orders", Order(id="o", sku="tea", quantity=1))
    await run_until_idle(app, url=server.url, redis=redis, settings=FAST)
    dead = await xrange(redis, "{orders}:dead:strict.sneaky")
    assert [fields[b"dl:exception"] for _, fields in dead] == [b"ConfigError"]
    assert b"cannot publish to 'elsewhere'" in dead[0][1][b"dl:message"]
    assert await redis.exists("elsewhere") == 0


def test_declarations_are_checked_at_import() -> None:
    app = App("checks")

    def plain(message: Any, ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match="async def"):
        app.processor(input="a")(plain)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="reads and writes"):

        @app.processor(input="a", output="a")
        async def loop(m: Any, c: Context) -> None: ...


async def test_handlers_get_the_apps_own_classes(server: EmbeddedServer, redis: Redis) -> None:
    from gristmill.schemas.build import SchemaBuilder

    def build() -> Any:
        schema = SchemaBuilder("tests/stamped.proto", package="tests.stamped")
        stamped = schema.message("Stamped")
        stamped.field("id", 1, "string")
        stamped.field("at", 2, "google.protobuf.Timestamp")
        return schema.build()

    ours, theirs = build(), build()  # same content, two pools: another process's classes
    mine = ours["tests.stamped.Stamped"]
    app = App("stamps", schemas=[ours])

    @app.processor(input="stamps", output="stamps.copied", from_beginning=True)
    async def copy(message: Any, ctx: Context) -> Any:
        assert type(message) is mine
        copied = mine(id=message.id)
        copied.at.CopyFrom(message.at)  # refused by protobuf across pools
        return copied

    sent = theirs["tests.stamped.Stamped"](id="s-1")
    sent.at.FromSeconds(1_700_000_000)
    await Publisher(redis).publish("stamps", sent)
    result = await run_until_idle(app, url=server.url, redis=redis, settings=FAST)
    copied: list[Any] = await result.published("stamps.copied")
    assert [(m.id, m.at.seconds) for m in copied] == [("s-1", 1_700_000_000)]


async def test_requeue_brings_an_entry_back_until_it_is_done(
    server: EmbeddedServer, redis: Redis
) -> None:
    runs: dict[str, list[int]] = {}
    app = App("again")

    @app.processor(input="jobs", output="done", from_beginning=True)
    async def work(order: Any, ctx: Context) -> Any:
        seen = runs.setdefault(order.id, [])
        seen.append(ctx.attempt)
        if len(seen) < 3:
            ctx.requeue(delay=0.05)
            return None
        return order

    await Publisher(redis).publish_many("jobs", [Order(id=f"j-{n}", sku="x") for n in range(20)])
    settings = Settings(block_ms=50, claim_idle=5.0, delayed_bucket_ms=10)
    result = await run_until_idle(app, url=server.url, redis=redis, settings=settings)
    done: list[Any] = await result.published("done")
    assert sorted(o.id for o in done) == sorted(runs)
    assert all(attempts == [1, 1, 1] for attempts in runs.values())  # a requeue is no failure
    assert len(runs) == 20
    # only this group saw them again: the shared input still holds each job once
    assert await redis.xlen("jobs") == 20


async def test_publisher_schedules_for_later(server: EmbeddedServer, redis: Redis) -> None:
    app = App("later")

    @app.processor(input="reminders", output="sent", from_beginning=True)
    async def send(order: Any, ctx: Context) -> Any:
        return order

    publisher = Publisher(redis)
    due_ms = await publisher.schedule("reminders", Order(id="r-1"), delay=0.2)
    assert await redis.xlen("reminders") == 0
    settings = Settings(block_ms=50, claim_idle=5.0, delayed_bucket_ms=10)
    runtime = Runtime(app, settings, server.url)
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        with anyio.fail_after(10):
            while not await redis.xlen("sent"):
                await anyio.sleep(0.02)
        runtime.stop()
    entry_id = (await xrange(redis, "reminders"))[0][0]
    assert int(entry_id.split(b"-")[0]) >= due_ms  # never early


async def test_execution_classes_keep_long_jobs_apart(server: EmbeddedServer, redis: Redis) -> None:
    from gristmill import class_lane

    app = App("jobs")
    seen: dict[str, list[str]] = {"short": [], "long": []}

    @app.processor(input=class_lane("jobs", "short"), output="done.short", from_beginning=True)
    async def short(order: Any, ctx: Context) -> Any:
        seen["short"].append(order.id)
        return order

    @app.processor(input=class_lane("jobs", "long"), output="done.long", from_beginning=True)
    async def long(order: Any, ctx: Context) -> Any:
        seen["long"].append(order.id)
        return order

    publisher = Publisher(redis)
    for number in range(3):
        await publisher.schedule("jobs", Order(id=f"s-{number}"), delay=0, execution_class="short")
        await publisher.schedule("jobs", Order(id=f"l-{number}"), delay=0, execution_class="long")
    settings = Settings(block_ms=50, claim_idle=5.0, delayed_bucket_ms=10)
    runtime = Runtime(app, settings, server.url)
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        with anyio.fail_after(10):
            while await redis.xlen("done.short") + await redis.xlen("done.long") < 6:
                await anyio.sleep(0.02)
        runtime.stop()
    assert sorted(seen["short"]) == ["s-0", "s-1", "s-2"]
    assert sorted(seen["long"]) == ["l-0", "l-1", "l-2"]
    assert await redis.exists("jobs") == 0  # nothing went to the plain stream


async def test_a_hung_handler_times_out_and_is_retried(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("hung")
    runs: list[int] = []

    @app.processor(
        input="orders", output="invoices", from_beginning=True, timeout=0.2,
        retry=RetryPolicy(initial_delay=0.01, jitter=0.0),
    )  # fmt: skip
    async def stuck_once(order: Any, ctx: Context) -> Any:
        runs.append(ctx.attempt)
        if ctx.attempt == 1:
            await anyio.sleep(3600)  # never returns on its own
        return Invoice(order_id=order.id)

    await Publisher(redis).publish("orders", Order(id="o-1"))
    settings = Settings(block_ms=50, claim_idle=5.0, delayed_bucket_ms=10)
    result = await run_until_idle(app, url=server.url, redis=redis, settings=settings)
    invoices: list[Any] = await result.published("invoices")
    assert [i.order_id for i in invoices] == ["o-1"]
    assert runs == [1, 2]


async def test_an_entry_over_the_crash_cap_is_dead_lettered_unrun(
    server: EmbeddedServer, redis: Redis
) -> None:
    runs: list[str] = []
    app = App("capped")  # declares no schema: the entry's id is new to the runtime's cache

    @app.processor(input="orders", retry=RetryPolicy(max_deliveries=2), claim_idle=0.2)
    async def record(order: Any, ctx: Context) -> None:
        runs.append(order.id)

    await redis.xgroup_create("orders", "capped.record", "$", mkstream=True)
    entry_id = await Publisher(redis).publish("orders", Order(id="poison"))
    await redis.xreadgroup("capped.record", "dead-1", {"orders": ">"})
    await raw(redis, "XCLAIM", "orders", "capped.record", "dead-2", 0, entry_id)  # delivery 2
    await run_until_idle(app, url=server.url, redis=redis, settings=FAST)
    assert runs == []  # the third delivery is over the cap: dead-lettered unrun
    dead = await xrange(redis, "{orders}:dead:capped.record")
    assert [fields[b"dl:reason"] for _, fields in dead] == [b"crash_loop"]
