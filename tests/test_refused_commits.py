"""A refused commit writes nothing, so a healthy replica that takes its entries over writes once.

The commit script checks, before its first write, everything that could refuse it midway: the
ACL of each command on each key, the type of each key, and memory (maxmemory refuses the whole
call up front). Each test runs a refused worker and a healthy one of the same group (real
`runtime serve` processes) and counts every order id in the output: never written twice.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill import keys
from gristmill.envelope import open_fields
from gristmill.producer import Publisher
from services.schemas import Order
from tests.delivery import PLACED, order, place_orders
from tests.helpers.procs import Proc, serve
from tests.typed_redis import raw

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

pytestmark = pytest.mark.slow

GROUP = "orders.validate"
ENV = {
    "GRISTMILL_CLAIM_IDLE": "1",  # the refused worker's entries move on after a second
    "GRISTMILL_BATCH": "200",
    "GRISTMILL_BLOCK_MS": "200",
    "GRISTMILL_LOG_LEVEL": "INFO",
}


def worker(url: str, stack: ExitStack) -> Proc:
    return stack.enter_context(
        serve("services.orders:app", env={**ENV, "GRISTMILL_REDIS_URL": url})
    )


async def valid_ids(redis: Redis) -> Counter[str]:
    """How often each order id was written to orders.valid."""
    out = await raw(redis, b"XRANGE", "orders.valid", "-", "+")
    return Counter(Order.FromString(open_fields(fields, 1 << 20).payload).id for _, fields in out)


async def refused_exit(refused: Proc) -> None:
    with anyio.fail_after(60):
        while refused.alive:
            await anyio.sleep(0.1)
    assert refused.returncode == 3, refused.output[-3000:]
    assert refused.find_line("refused a commit .*it wrote nothing") is not None, refused.output


async def done(redis: Redis, total: int) -> None:
    """Wait until every order is in orders.valid and nothing is pending, then a little more."""
    with anyio.fail_after(90):
        while (await redis.xpending(PLACED, GROUP))["pending"] or (
            sum((await valid_ids(redis)).values()) < total
        ):
            await anyio.sleep(0.1)
    await anyio.sleep(1.5)  # past claim_idle: a double write would have landed by now


async def wait_consumers(redis: Redis, count: int) -> None:
    with anyio.fail_after(30):
        while len(await redis.xinfo_consumers(PLACED, GROUP)) < count:
            await anyio.sleep(0.05)


async def test_a_worker_without_xack_writes_nothing_and_its_replica_writes_once(
    server: EmbeddedServer, redis: Redis
) -> None:
    await raw(redis, "ACL", "SETUSER", "noack", "on", ">pw", "~*", "&*", "+@all", "-xack")
    await redis.xgroup_create(PLACED, GROUP, id="0", mkstream=True)
    try:
        with ExitStack() as stack:
            healthy = worker(server.url, stack)
            await wait_consumers(redis, 1)  # the healthy one reads (and then sits paused)
            healthy.pause()
            refused = worker(f"redis://noack:pw@127.0.0.1:{server.port}/0", stack)
            await wait_consumers(redis, 2)
            await place_orders(redis, range(400))
            await refused_exit(refused)
            written_by_refused = sum((await valid_ids(redis)).values())
            healthy.resume()
            await done(redis, 400)
            assert await healthy.terminate_async() == 0
    finally:
        await raw(redis, "ACL", "DELUSER", "noack")
    assert written_by_refused == 0
    counts = await valid_ids(redis)
    assert set(counts) == {f"o-{n}" for n in range(400)}
    assert max(counts.values()) == 1


async def test_a_wrong_typed_dead_letter_lane_refuses_the_commit_before_any_output(
    server: EmbeddedServer, redis: Redis
) -> None:
    # the batch's valid orders come before the empty one that goes to the dead-letter lane:
    # a check at the lane's XADD (midway) would already have written their outputs
    lane = keys.dead_lane(PLACED, GROUP)
    await redis.rpush(lane, "not a stream")
    await redis.xgroup_create(PLACED, GROUP, id="0", mkstream=True)
    await place_orders(redis, range(50))
    empty = Order(id="o-empty", customer_id="c")
    await raw(redis, "XADD", PLACED, "*", *await Publisher(redis).fields(empty))
    with ExitStack() as stack:
        refused = worker(server.url, stack)
        await refused_exit(refused)
        assert refused.find_line(f"key {lane} holds a list") is not None, refused.output
        assert await redis.xlen("orders.valid") == 0
        await redis.delete(lane)  # the operator fixes the key; a replica takes over
        healthy = worker(server.url, stack)
        await done(redis, 50)
        assert await healthy.terminate_async() == 0
    counts = await valid_ids(redis)
    assert set(counts) == {f"o-{n}" for n in range(50)}
    assert max(counts.values()) == 1
    assert await redis.xlen(lane) == 1


async def test_maxmemory_refuses_the_whole_commit_up_front(
    server: EmbeddedServer, redis: Redis
) -> None:
    await redis.xgroup_create(PLACED, GROUP, id="0", mkstream=True)
    publisher = Publisher(redis)
    fields = [await publisher.fields(order(n)) for n in range(100)]
    try:
        with ExitStack() as stack:
            refused = worker(server.url, stack)
            await wait_consumers(redis, 1)
            refused.pause()  # it holds no entry yet; it will read them once memory is full
            async with redis.pipeline(transaction=False) as pipe:
                for entry in fields:
                    pipe.execute_command("XADD", PLACED, "*", *entry)
                await pipe.execute()
            await raw(redis, "CONFIG", "SET", "maxmemory-policy", "noeviction")
            await raw(redis, "CONFIG", "SET", "maxmemory", "1")
            refused.resume()
            await refused_exit(refused)
            assert refused.find_line("OOM") is not None, refused.output
            assert await redis.xlen("orders.valid") == 0
            await raw(redis, "CONFIG", "SET", "maxmemory", "0")
            healthy = worker(server.url, stack)
            await done(redis, 100)
            assert await healthy.terminate_async() == 0
    finally:
        await raw(redis, "CONFIG", "SET", "maxmemory", "0")
    counts = await valid_ids(redis)
    assert set(counts) == {f"o-{n}" for n in range(100)}
    assert max(counts.values()) == 1
