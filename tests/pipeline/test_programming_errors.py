"""Programming errors are loud: refused at import when visible there, else dead-lettered at once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from gristmill import App
from gristmill.errors import ConfigError
from gristmill.producer import Publisher
from gristmill.settings import Settings
from gristmill.testing import run_until_idle
from tests.pipeline.messages import Invoice, Order
from tests.typed_redis import xrange

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer

FAST = Settings(block_ms=50, claim_idle=1.0, grace=5.0)


def test_a_typo_in_a_keyword_fails_at_import_with_the_valid_ones() -> None:
    app = App("typos")
    with pytest.raises(ConfigError) as raised:
        app.processor(input="x", from_begining=True, max_len=10)  # type: ignore[arg-type]
    text = str(raised.value)
    assert "'from_begining' (did you mean 'from_beginning'?)" in text
    assert "'max_len' (did you mean 'maxlen'?)" in text
    assert "valid keywords: input, output, side_outputs" in text


def test_a_handler_annotated_to_return_a_message_needs_an_output() -> None:
    app = App("nowhere")
    with pytest.raises(ConfigError, match="no output= is declared"):

        @app.processor(input="orders")
        async def lost(order: Any, ctx: Context) -> Message:
            return order  # type: ignore[no-any-return]


async def the_handler_error(redis: Redis, app: App, group: str) -> dict[bytes, bytes]:
    """Run `app` on one order; its one dead-letter record, checked to be a handler_error."""
    await Publisher(redis).publish("orders", Order(id="o", sku="tea", quantity=1))
    await run_until_idle(app, url=redis_url(redis), redis=redis, settings=FAST)
    dead = [fields for _, fields in await xrange(redis, f"{{orders}}:dead:{group}")]
    assert [(d[b"dl:reason"], d[b"dl:attempts"]) for d in dead] == [(b"handler_error", b"1")]
    return dead[0]


def redis_url(redis: Redis) -> str:
    kwargs = redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


async def test_a_message_returned_without_an_output_is_dead_lettered_not_dropped(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("silent")

    @app.processor(input="orders", from_beginning=True)
    async def forgets(order: Any, ctx: Context) -> Any:
        return Invoice(order_id=order.id, total_cents=1)

    record = await the_handler_error(redis, app, "silent.forgets")
    assert b"declares no output=" in record[b"dl:message"]


async def test_a_dict_returned_is_dead_lettered_at_once_as_a_handler_error(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("dicts")

    @app.processor(input="orders", output="invoices", from_beginning=True)
    async def returns_dict(order: Any, ctx: Context) -> Any:
        return {"order_id": order.id}

    record = await the_handler_error(redis, app, "dicts.returns_dict")
    assert record[b"dl:exception"] == b"ConfigError"
    assert b"returned dict" in record[b"dl:message"]


async def test_publishing_to_an_undeclared_stream_is_dead_lettered_at_once(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("undeclared")

    @app.processor(input="orders", output="invoices", from_beginning=True)
    async def sneaky(order: Any, ctx: Context) -> None:
        ctx.publish("elsewhere", order)

    record = await the_handler_error(redis, app, "undeclared.sneaky")
    assert b"cannot publish to 'elsewhere'" in record[b"dl:message"]


async def test_a_new_group_says_how_many_entries_it_skipped(
    server: EmbeddedServer, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("late")

    @app.processor(input="orders")
    async def joins_late(order: Any, ctx: Context) -> None:
        return None

    publisher = Publisher(redis)
    for number in range(3):
        await publisher.publish("orders", Order(id=f"o-{number}", sku="tea", quantity=1))
    with caplog.at_level(logging.WARNING, logger="gristmill.pipeline.consume"):
        await run_until_idle(app, url=server.url, redis=redis, settings=FAST)
        await run_until_idle(app, url=server.url, redis=redis, settings=FAST)  # group exists now
    skipped = [r.getMessage() for r in caplog.records if "skips the" in r.getMessage()]
    expected = (
        "new consumer group late.joins_late starts at the end of orders: it skips the 3 "
        "entries already there; declare the processor with from_beginning=True to read them"
    )
    assert skipped == [expected]


@pytest.mark.parametrize("declared", ["annotation", "input_type"])
async def test_an_entry_of_another_type_is_dead_lettered_as_wrong_type(
    server: EmbeddedServer, redis: Redis, declared: str
) -> None:
    app = App(f"typed-{declared}")
    seen: list[str] = []

    if declared == "annotation":

        @app.processor(input="orders", from_beginning=True)
        async def take(order: Order, ctx: Context) -> None:
            seen.append(order.id)

    else:

        @app.processor(input="orders", from_beginning=True, input_type=Order)
        async def take(order: Any, ctx: Context) -> None:
            seen.append(order.id)

    publisher = Publisher(redis)
    await publisher.publish("orders", Order(id="right", sku="tea", quantity=1))
    await publisher.publish("orders", Invoice(order_id="wrong", total_cents=1))
    await run_until_idle(app, url=server.url, redis=redis, settings=FAST)
    assert seen == ["right"]
    dead = await xrange(redis, f"{{orders}}:dead:typed-{declared}.take")
    assert [d[b"dl:reason"] for _, d in dead] == [b"wrong_type"]


async def test_a_wrong_typed_input_key_is_named_in_the_log(
    server: EmbeddedServer, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    from gristmill.runtime import Runtime

    app = App("listy")

    @app.processor(input="orders")
    async def reads(order: Any, ctx: Context) -> None:
        return None

    await redis.rpush("orders", "not a stream")
    runtime = Runtime(app, FAST, server.url)
    with caplog.at_level(logging.WARNING, logger="gristmill.pipeline.session"):
        async with anyio.create_task_group() as group:
            group.start_soon(runtime.run)
            with anyio.fail_after(30):
                while not any("server trouble" in r.getMessage() for r in caplog.records):
                    await anyio.sleep(0.05)
            runtime.stop()
    trouble = [r.getMessage() for r in caplog.records if "server trouble" in r.getMessage()]
    assert "WRONGTYPE" in trouble[0]
    assert "key orders is not a stream" in trouble[0]
