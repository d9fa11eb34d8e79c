"""Idle processors park with no connection; the watcher wakes them for entries and reclaims."""

from __future__ import annotations

import random
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from gristmill import App
from gristmill.pipeline.consume import Reader, newest_ids
from gristmill.pipeline.parking import (
    NEVER_IDLE_MS,
    Parked,
    check_commands,
    stream_id,
    watch_command,
    with_idle_entries,
    woken_by,
)
from gristmill.pipeline.resp import pack_command
from gristmill.producer import Publisher
from gristmill.runtime import Runtime
from gristmill.settings import Settings
from tests.pipeline.messages import Invoice, Order

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer
    from gristmill.pipeline.parking import Watcher

GROUP = "billing.bill"
# parks after 3 empty 50 ms reads; the watcher looks for idle entries every 0.5 s
QUICK = Settings(block_ms=50, claim_idle=1.0, grace=5.0, health_port=0)


def parked(streams: tuple[bytes, ...], after: tuple[bytes, ...]) -> Parked:
    return Parked(streams, after, b"g", b"c", 1000)


# -- the pure parts ----------------------------------------------------------------------------


def test_stream_ids_compare_as_numbers_not_as_bytes() -> None:
    assert stream_id(b"9-1") < stream_id(b"10-0")
    assert stream_id(b"5-2") < stream_id(b"5-10")
    assert stream_id(b"0-0") == (0, 0)


def test_the_watch_reads_each_stream_from_the_lowest_id_any_parker_saw() -> None:
    one = parked((b"a", b"b"), (b"10-0", b"7-1"))
    two = parked((b"a",), (b"9-5",))
    command = watch_command([one, two], 5000)
    expected = (b"XREAD", b"COUNT", 1, b"BLOCK", 5000, b"STREAMS", b"a", b"b", b"9-5", b"7-1")
    assert command == pack_command(expected)
    assert watch_command([], 5000) is None


def test_a_reply_wakes_only_the_parkers_of_streams_with_entries() -> None:
    one = parked((b"a", b"b"), (b"0-0", b"0-0"))
    two = parked((b"c",), (b"0-0",))
    three = parked((b"b",), (b"0-0",))
    reply = [[b"b", [[b"1-0", [b"f", b"v"]]]], [b"c", []]]
    assert woken_by(reply, [one, two, three]) == [one, three]
    assert woken_by(None, [one, two, three]) == []  # the block timed out or was unblocked


def test_the_check_looks_for_idle_entries_and_keeps_each_consumer_seen() -> None:
    one = parked((b"a", b"b"), (b"0-0", b"0-0"))
    two = parked((b"c",), (b"0-0",))
    commands = check_commands([one, two])
    assert commands[0] == (b"XPENDING", b"a", b"g", b"IDLE", 1000, b"-", b"+", 1)
    assert commands[1] == (b"XCLAIM", b"a", b"g", b"c", NEVER_IDLE_MS, b"0-1")
    assert len(commands) == 6
    idle_on_c = [[], [], [], [], [[b"1-0", b"ghost", 5000, 1]], []]
    assert with_idle_entries([one, two], idle_on_c) == [two]
    idle_on_b = [[], [], [[b"1-0", b"ghost", 5000, 1]], [], [], []]
    assert with_idle_entries([one, two], idle_on_b) == [one]


def test_the_last_look_takes_the_newest_ids_before_a_read_that_does_not_block() -> None:
    reader = Reader(b"g", b"c", (b"a", b"b"), count=10, block_ms=50)
    commands = reader.last_look_commands()
    assert commands[:2] == [
        (b"XREVRANGE", b"a", b"+", b"-", b"COUNT", 1),
        (b"XREVRANGE", b"b", b"+", b"-", b"COUNT", 1),
    ]
    assert b"BLOCK" not in commands[2]
    assert commands[2][:2] == (b"XREADGROUP", b"GROUP")
    replies: list[Any] = [[[b"4-0", [b"f", b"v"]]], []]
    assert newest_ids(replies) == (b"4-0", b"0-0")


# -- against a real server ---------------------------------------------------------------------


def billing_app() -> App:
    app = App("billing")

    @app.processor(input="orders", output="invoices", from_beginning=True)
    async def bill(order: Any, ctx: Context) -> Any:
        return Invoice(order_id=order.id, total_cents=order.quantity * 250)

    # never gets an entry: it stays parked, so the watcher is blocked in an XREAD without
    # `bill`'s stream whenever `bill` parks again (it must be unblocked to add it)
    @app.processor(input="quiet", output="invoices", from_beginning=True)
    async def hush(order: Any, ctx: Context) -> Any:
        return None

    return app


@asynccontextmanager
async def running(server: EmbeddedServer, settings: Settings = QUICK) -> AsyncIterator[Runtime]:
    runtime = Runtime(billing_app(), settings, server.url)
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        await runtime.wait_ready()
        yield runtime
        runtime.stop()


async def until(check: Any, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await anyio.sleep(0.01)


async def connection_names(redis: Redis) -> list[str]:
    clients = await redis.client_list()
    return [client["name"] for client in clients]


async def until_parked(runtime: Runtime, what: str = "the processor parks") -> Watcher:
    """Wait until both processors (`bill` and the always idle `hush`) are parked."""
    watcher = runtime.watcher
    assert watcher is not None

    async def both_parked() -> bool:
        return watcher.parked == 2

    await until(both_parked, what)
    return watcher


async def until_invoices(redis: Redis, count: int, what: str, within: float = 10.0) -> None:
    async def handled() -> bool:
        return int(await redis.xlen("invoices")) == count

    await until(handled, what, within)


async def test_an_idle_processor_parks_with_no_connection_and_an_entry_wakes_it(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis)
    async with running(server) as runtime:
        await until_parked(runtime)

        async def only_the_watcher_connected() -> bool:  # closes reach the server a bit later
            names = await connection_names(redis)
            ours = {f"gristmill:{GROUP}:read", f"gristmill:{GROUP}:commit"}
            return "gristmill:parked:watch" in names and not ours.intersection(names)

        await until(only_the_watcher_connected, "the parked loop's connections are closed")
        for n in range(3):
            await publisher.publish("orders", Order(id=f"o-{n}", sku="tea", quantity=1))

            await until_invoices(redis, n + 1, f"entry {n} is handled after parking")
            await until_parked(runtime, "the processor parks again")


async def test_entries_added_at_any_moment_around_parking_are_never_left_waiting(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis)
    rng = random.Random(7)
    # the watcher's read blocks its full 5 s (no idle-entry look due within the test), so only
    # the nudge of a new parker gets it watched in time
    settings = Settings(block_ms=50, claim_idle=30.0, grace=5.0, health_port=0)
    async with running(server, settings):
        for n in range(60):
            # 0-400 ms after the last one: busy, idle, taking the last look, or parked
            await anyio.sleep(rng.uniform(0.0, 0.4))
            await publisher.publish("orders", Order(id=f"o-{n}", sku="tea", quantity=1))

            # a missed wake would leave it until the next entry: never, for the last one
            await until_invoices(redis, n + 1, f"entry {n} is handled", within=2.0)


async def test_a_parked_processor_reclaims_a_dead_consumers_entries(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis)
    async with running(server) as runtime:
        await until_parked(runtime)
        # a consumer of another process takes 5 entries and dies before its commit
        await redis.xgroup_createconsumer("orders", GROUP, "ghost")
        for n in range(5):
            fields = await publisher.fields(Order(id=f"g-{n}", sku="tea", quantity=1))
            await redis.xadd("orders", dict(zip(fields[::2], fields[1::2], strict=True)))
        await redis.xreadgroup(GROUP, "ghost", {"orders": ">"}, count=5)
        assert (await redis.xpending("orders", GROUP))["pending"] == 5

        await until_invoices(redis, 5, "the ghost's entries are reclaimed and handled")
        assert (await redis.xpending("orders", GROUP))["pending"] == 0


async def test_a_parked_consumer_stays_seen(server: EmbeddedServer, redis: Redis) -> None:
    async with running(server) as runtime:
        watcher = await until_parked(runtime)
        await anyio.sleep(2.5)  # parked for 2.5 x claim_idle
        assert watcher.parked == 2
        (consumer,) = await redis.xinfo_consumers("orders", GROUP)
        assert consumer["name"].decode() == runtime.consumer
        assert consumer["idle"] < 1000  # seen at least every claim_idle / 2


async def test_stopping_wakes_parked_processors(server: EmbeddedServer, redis: Redis) -> None:
    runtime = Runtime(billing_app(), QUICK, server.url)
    started = 0.0
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(runtime.run)
            await runtime.wait_ready()
            await until_parked(runtime)
            started = time.monotonic()
            runtime.stop()
    # a parked loop that missed the stop would hold the drain until the grace period (5 s)
    assert time.monotonic() - started < 2.5


async def test_a_lost_watcher_connection_wakes_the_parked_and_nothing_is_missed(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis)
    async with running(server) as runtime:
        await until_parked(runtime)
        for client in await redis.client_list():
            if client["name"] == "gristmill:parked:watch":
                await redis.client_kill_filter(_id=client["id"])
        await publisher.publish("orders", Order(id="after-kill", sku="tea", quantity=1))

        await until_invoices(redis, 1, "the entry is handled after the watcher lost its connection")
        await until_parked(runtime, "the processor parks again, on a new watcher connection")


async def test_without_parking_an_idle_processor_keeps_its_connections(
    server: EmbeddedServer, redis: Redis
) -> None:
    settings = Settings(block_ms=50, claim_idle=1.0, grace=5.0, health_port=0, park_idle=False)
    async with running(server, settings) as runtime:
        assert runtime.watcher is None
        await anyio.sleep(0.5)  # ten empty reads
        names = await connection_names(redis)
        assert f"gristmill:{GROUP}:read" in names
        assert f"gristmill:{GROUP}:commit" in names


async def test_a_user_that_may_not_look_keeps_blocking_instead_of_parking(
    server: EmbeddedServer, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # an ACL generated before parking existed: everything but XREVRANGE (the last look)
    await redis.acl_setuser(
        "before-parking", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
        commands=["+@all", "-xrevrange"],
    )  # fmt: skip
    url = f"redis://before-parking:pw@127.0.0.1:{server.port}/0"
    runtime = Runtime(billing_app(), QUICK, url)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(runtime.run)
            await runtime.wait_ready()
            await anyio.sleep(0.5)  # ten empty reads: it would have parked
            assert runtime.watcher is not None
            assert runtime.watcher.parked == 0
            assert f"gristmill:{GROUP}:read" in await connection_names(redis)
            await Publisher(redis).publish("orders", Order(id="o-1", sku="tea", quantity=1))

            await until_invoices(redis, 1, "the entry is handled by the blocking read")
            runtime.stop()
    finally:
        await redis.acl_deluser("before-parking")
    assert "`runtime acl` grants XREVRANGE and XREAD for parking" in caplog.text
