from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from gristmill import App
from gristmill.pipeline.handle import BatchRunner
from gristmill.producer import Publisher
from gristmill.runtime import Runtime
from gristmill.settings import Settings
from tests.pipeline.messages import Invoice, Order

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer


async def test_handlers_that_never_suspend_run_inline_in_order() -> None:
    runner = BatchRunner(concurrency=8)
    seen: list[int] = []

    async def run_one(index: int) -> None:
        seen.append(index)

    async with anyio.create_task_group() as group:
        runner.start_helpers(group)
        await runner.run(100, run_one)
        group.cancel_scope.cancel()
    assert seen == list(range(100))


async def test_suspending_handlers_overlap_up_to_the_concurrency() -> None:
    runner = BatchRunner(concurrency=4)
    in_flight = 0
    peak = 0
    done: list[int] = []

    async def run_one(index: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        done.append(index)

    async with anyio.create_task_group() as group:
        runner.start_helpers(group)
        for _ in range(3):  # several batches reuse the same helpers
            done.clear()
            await runner.run(20, run_one)
            assert sorted(done) == list(range(20))
            assert in_flight == 0
        group.cancel_scope.cancel()
    assert peak == 4


async def test_concurrency_one_runs_one_at_a_time() -> None:
    runner = BatchRunner(concurrency=1)
    in_flight = 0
    peak = 0

    async def run_one(index: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.lowlevel.checkpoint()
        in_flight -= 1

    async with anyio.create_task_group() as group:
        runner.start_helpers(group)
        await runner.run(10, run_one)
        group.cancel_scope.cancel()
    assert peak == 1


def _helper_tasks() -> int:
    return sum(1 for task in asyncio.all_tasks() if task.get_name().startswith("handler-helper"))


async def test_helpers_start_only_once_a_handler_suspends() -> None:
    runner = BatchRunner(concurrency=64)

    async def returns_at_once(index: int) -> None:
        return None

    async def suspends(index: int) -> None:
        await anyio.sleep(0.001)

    async with anyio.create_task_group() as group:
        runner.start_helpers(group)
        for _ in range(5):
            await runner.run(100, returns_at_once)
        assert _helper_tasks() == 1  # one waits: 1,000 such processors hold 1,000 tasks, not 63,000
        await runner.run(100, suspends)
        assert _helper_tasks() == 63
        await runner.run(100, suspends)  # the same helpers again, none added
        assert _helper_tasks() == 63
        group.cancel_scope.cancel()


async def test_a_slow_batch_is_kept_from_other_consumers_while_its_handler_runs(
    server: EmbeddedServer, redis: Redis
) -> None:
    runs: list[str] = []
    app = App("slowpoke")

    @app.processor(input="orders", output="invoices", from_beginning=True)
    async def bill(order: Any, ctx: Context) -> Any:
        runs.append(f"{order.id}@{ctx.entry_id}")
        await anyio.sleep(2.5)  # 2.5 x claim_idle: the other consumer reclaims every 0.5 s
        return Invoice(order_id=order.id, total_cents=1)

    settings = Settings(block_ms=50, claim_idle=1.0, grace=5.0, health_port=0)
    first = Runtime(app, settings, server.url, consumer="first")
    second = Runtime(app, settings, server.url, consumer="second")
    async with anyio.create_task_group() as group:
        group.start_soon(first.run)
        await first.wait_ready()
        await Publisher(redis).publish("orders", Order(id="slow", sku="tea", quantity=1))
        while not runs:
            await anyio.sleep(0.01)
        group.start_soon(second.run)  # it joins while the batch is in the handler
        with anyio.fail_after(10):
            while int(await redis.xlen("invoices")) < 1:
                await anyio.sleep(0.05)
        await anyio.sleep(1.0)  # a reclaim by `second` would run it again meanwhile
        first.stop()
        second.stop()
    assert len(runs) == 1, runs
    assert int(await redis.xlen("invoices")) == 1
