"""The runtime's delivery guarantees, shown with real worker processes on a real server.

Every test runs the example pipeline (services.orders -> services.payments) or a slow relay
under `runtime serve` in subprocesses, injects a fault, and counts every order id in the final
output: 0 lost, 0 duplicated.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill.embedded import EmbeddedServer, free_port
from tests.delivery import (
    GROUPS,
    checksum,
    expected_amount,
    place_orders,
    receipts,
    wait_for_groups,
    wait_until_idle,
)
from tests.helpers.procs import Proc, serve

if TYPE_CHECKING:
    from pathlib import Path

    from redis.asyncio import Redis

pytestmark = pytest.mark.slow

WORKER_ENV = {
    "GRISTMILL_CLAIM_IDLE": "1",  # a dead worker's entries move on after a second
    "GRISTMILL_BATCH": "200",
    "GRISTMILL_BLOCK_MS": "200",
    "GRISTMILL_GRACE": "10",
    "GRISTMILL_LOG_LEVEL": "INFO",
}


def start_worker(url: str, target: str, stack: ExitStack) -> Proc:
    return stack.enter_context(serve(target, env={**WORKER_ENV, "GRISTMILL_REDIS_URL": url}))


def assert_exactly_once(found: list[tuple[str, int]], numbers: range) -> None:
    ids = [order_id for order_id, _ in found]
    duplicated = len(ids) - len(set(ids))
    lost = {f"o-{n}" for n in numbers} - set(ids)
    assert (len(lost), duplicated) == (0, 0), f"lost {len(lost)}, duplicated {duplicated}"
    assert checksum(found) == checksum([(f"o-{n}", expected_amount(n)) for n in numbers])


async def test_the_pipeline_moves_100k_orders_exactly_once(
    server: EmbeddedServer, redis: Redis
) -> None:
    numbers = range(100_000)
    with ExitStack() as stack:
        workers = [
            start_worker(server.url, "services.orders:app", stack),
            start_worker(server.url, "services.payments:app", stack),
        ]
        await wait_for_groups(redis, GROUPS)
        await place_orders(redis, numbers)
        await wait_until_idle(redis, len(numbers), within=180)
        codes = [await worker.terminate_async() for worker in workers]
    assert codes == [0, 0]
    assert_exactly_once(await receipts(redis), numbers)


@pytest.mark.fault
async def test_kill_9_of_workers_mid_batch_loses_and_duplicates_nothing(
    server: EmbeddedServer, redis: Redis
) -> None:
    numbers = range(100_000)
    targets = ["services.orders:app", "services.orders:app",
               "services.payments:app", "services.payments:app"]  # fmt: skip
    kills = 0
    rng = random.Random(20261125)
    with ExitStack() as stack:
        workers = [start_worker(server.url, target, stack) for target in targets]
        await wait_for_groups(redis, GROUPS)
        produced = anyio.Event()

        async def produce() -> None:
            for start in range(0, len(numbers), 5000):
                await place_orders(redis, range(start, start + 5000))
                await anyio.sleep(0.05)
            produced.set()

        async def kill_workers() -> None:
            nonlocal kills
            while not produced.is_set() or kills < 12:
                await anyio.sleep(rng.uniform(0.2, 0.6))
                victim = rng.randrange(len(workers))
                workers[victim].kill9()
                workers[victim] = start_worker(server.url, targets[victim], stack)
                kills += 1

        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            group.start_soon(kill_workers)
        await wait_until_idle(redis, len(numbers), within=240)
        for worker in workers:  # a replacement killed before it starts up would exit -15
            await worker.wait_for_line_async("serving", within=30)
        codes = [await worker.terminate_async() for worker in workers]
    assert kills >= 12
    assert codes == [0, 0, 0, 0]
    assert_exactly_once(await receipts(redis), numbers)


@pytest.mark.fault
async def test_a_paused_worker_cannot_commit_entries_claimed_meanwhile(
    server: EmbeddedServer, redis: Redis
) -> None:
    from gristmill.producer import Publisher
    from tests.delivery import order

    publisher = Publisher(redis)
    with ExitStack() as stack:
        paused = start_worker(server.url, "tests.apps.slow_relay:app", stack)
        other = start_worker(server.url, "tests.apps.slow_relay:app", stack)
        await wait_for_groups(redis, {"slow.in": "slow.relay"})
        total = 3000
        for start in range(0, total, 500):
            async with redis.pipeline(transaction=False) as pipe:
                for number in range(start, start + 500):
                    pipe.execute_command(
                        "XADD", "slow.in", "*", *await publisher.fields(order(number))
                    )
                await pipe.execute()
        refused_before = 0
        for _ in range(3):  # pause past claim_idle while it holds a batch, then resume
            await anyio.sleep(0.5)
            paused.pause()
            await anyio.sleep(2.5)
            paused.resume()
        with anyio.fail_after(120):
            while (
                await redis.xlen("slow.out") < total
                or (await redis.xpending("slow.in", "slow.relay"))["pending"]
            ):
                await anyio.sleep(0.1)
        await anyio.sleep(0.5)
        refused = paused.find_line("claimed by another consumer before our commit")
        codes = [await worker.terminate_async() for worker in (paused, other)]
        del refused_before
    send = redis.execute_command
    out = await send(b"XRANGE", "slow.out", "-", "+")  # type: ignore[no-untyped-call]
    from gristmill.envelope import open_fields
    from services.schemas import Order

    ids = [Order.FromString(open_fields(fields, 1 << 20).payload).id for _, fields in out]
    assert (len(ids), len(set(ids))) == (total, total)
    assert refused is not None, "the resumed worker should have had its late commit refused"
    assert codes == [0, 0]


async def test_sigterm_under_load_exits_0_and_leaves_nothing_pending(
    server: EmbeddedServer, redis: Redis
) -> None:
    numbers = range(30_000)
    with ExitStack() as stack:
        first = start_worker(server.url, "services.orders:app", stack)
        payments = start_worker(server.url, "services.payments:app", stack)
        await wait_for_groups(redis, GROUPS)
        consumers_before = {
            c["name"] for c in await redis.xinfo_consumers("orders.placed", "orders.validate")
        }
        await place_orders(redis, range(15_000))
        code = await first.terminate_async()  # SIGTERM while it works through the backlog
        second = start_worker(server.url, "services.orders:app", stack)
        await place_orders(redis, range(15_000, 30_000))
        await wait_until_idle(redis, len(numbers), within=120)
        codes = [await worker.terminate_async() for worker in (second, payments)]
        remaining = {c["name"]: c["pending"] for c in await redis.xinfo_consumers(
            "orders.placed", "orders.validate")}  # fmt: skip
    assert code == 0
    assert codes == [0, 0]
    # the stopped consumer drained and removed itself: nothing waits for a claim_idle
    assert not (consumers_before & set(remaining))
    assert_exactly_once(await receipts(redis), numbers)


@pytest.mark.fault
async def test_a_server_restart_with_aof_loses_nothing_acked(tmp_path: Path) -> None:
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    port = free_port()
    server = EmbeddedServer.start(tmp_path, port=port)
    redis = Redis.from_url(server.url)
    acked: list[int] = []
    try:
        with ExitStack() as stack:
            workers = [
                start_worker(server.url, "services.orders:app", stack),
                start_worker(server.url, "services.payments:app", stack),
            ]
            await wait_for_groups(redis, GROUPS)
            number = 0
            restarted = False
            while number < 40_000:
                chunk = range(number, number + 1000)
                try:
                    await place_orders(redis, chunk, chunk=1000)
                    acked += list(chunk)
                except (RedisConnectionError, ConnectionError, OSError):
                    await anyio.sleep(0.2)  # the server is down: this chunk is indeterminate
                number += 1000
                if number == 20_000 and not restarted:
                    server.kill()  # kill -9 mid-load
                    await anyio.sleep(0.5)
                    server = EmbeddedServer.start(tmp_path, port=port)
                    restarted = True
            await wait_until_idle(redis, len(acked), within=180, workers=workers)
            codes = [await worker.terminate_async() for worker in workers]
            found = await receipts(redis)
            incidents = [w.find_line("recovered after") for w in workers]
    finally:
        await redis.aclose()
        server.stop()
    ids = [order_id for order_id, _ in found]
    assert len(ids) == len(set(ids)), "duplicated"
    assert {f"o-{n}" for n in acked} <= set(ids), "an acknowledged order was lost"
    assert codes == [0, 0]
    assert all(incidents), "both workers should have logged their recovery"


async def test_a_refused_commit_stops_the_worker_instead_of_writing_twice(
    server: EmbeddedServer, redis: Redis
) -> None:
    # a user that may do everything but ack. This test once failed with 100 outputs: the
    # worker read all 50 in one batch, nothing more came, so the refused commit's reply sat
    # unchecked until the reclaim found the worker's own unacked entries idle past claim_idle
    # and ran them again. The orders are placed before the worker starts, so they always
    # arrive in one batch: the path that doubled is taken every time, not by chance.
    await redis.execute_command(
        "ACL", "SETUSER", "noack", "on", ">pw", "~*", "&*", "+@all", "-xack"
    )  # type: ignore[no-untyped-call]
    url = f"redis://noack:pw@127.0.0.1:{server.port}/0"
    await redis.xgroup_create("orders.placed", "orders.validate", id="0", mkstream=True)
    await place_orders(redis, range(50))
    try:
        with serve("services.orders:app", env={**WORKER_ENV, "GRISTMILL_REDIS_URL": url}) as worker:
            with anyio.fail_after(30):
                while worker.alive:
                    await anyio.sleep(0.1)
            assert worker.returncode == 3
            assert worker.find_line("refused a commit") is not None
        assert await redis.xlen("orders.valid") <= 50  # one attempt's outputs, never repeated
        assert await redis.xlen("orders.valid") == 0  # checked before its first write: none
    finally:
        await redis.execute_command("ACL", "DELUSER", "noack")  # type: ignore[no-untyped-call]
