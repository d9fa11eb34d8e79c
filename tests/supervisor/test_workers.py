"""`runtime serve --workers N` with real processes: a killed worker is replaced, nothing is
lost, a crash loop stops with a clear error, SIGTERM drains to exit 0."""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import TYPE_CHECKING

import anyio
import psutil
import pytest

from gristmill.supervisor import CRASH_LOOP_EXIT, Supervisor
from tests.delivery import pipeline_idle, place_orders, receipts
from tests.helpers.procs import serve

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

WORKER_ENV = {
    "GRISTMILL_CLAIM_IDLE": "1",  # the killed worker's pending entries move on after a second
    "GRISTMILL_BLOCK_MS": "200",
    "GRISTMILL_LOG_LEVEL": "INFO",
}


def _children(pid: int) -> set[int]:
    return {child.pid for child in psutil.Process(pid).children() if child.is_running()}


@pytest.mark.slow
@pytest.mark.fault
async def test_a_killed_worker_is_replaced_and_nothing_is_lost(
    server: EmbeddedServer, redis: Redis
) -> None:
    numbers = range(20_000)
    env = {**WORKER_ENV, "GRISTMILL_REDIS_URL": server.url}
    with (
        serve("services.orders:app", "--workers", "3", env=env) as orders,
        serve("services.payments:app", env=env) as payments,
    ):
        with anyio.fail_after(60):
            while len(_children(orders.pid)) < 3 or not await redis.exists("orders.placed"):
                await anyio.sleep(0.1)
            while len(await redis.xinfo_consumers("orders.placed", "orders.validate")) < 3:
                await anyio.sleep(0.1)
        first = _children(orders.pid)
        await place_orders(redis, numbers[:10_000])
        with anyio.fail_after(60):  # under load: some of the first orders are in flight
            while await redis.xlen("orders.valid") == 0:
                await anyio.sleep(0.01)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        await place_orders(redis, numbers[10_000:])
        await orders.wait_for_line_async(
            rf"worker \d \(pid {victim}\) died with killed by signal SIGKILL \(9\); restarting",
            within=30,
        )
        with anyio.fail_after(60):
            while len(_children(orders.pid)) < 3:
                await anyio.sleep(0.1)
        now = _children(orders.pid)
        assert len(now - first) == 1
        assert victim not in now
        started = [line for line in orders.lines if re.search(r"worker \d started as pid", line)]
        assert len(started) == 4, started
        with anyio.fail_after(180):
            while await redis.xlen("receipts") < len(numbers) or not await pipeline_idle(redis):
                await anyio.sleep(0.2)
        codes = [await orders.terminate_async(), await payments.terminate_async()]
    assert codes == [0, 0], orders.output
    assert orders.find_line("all 3 workers stopped cleanly") is not None
    found = [order_id for order_id, _ in await receipts(redis)]
    lost = {f"o-{n}" for n in numbers} - set(found)
    assert (len(lost), len(found) - len(set(found))) == (0, 0)


def test_a_worker_that_dies_at_once_repeatedly_stops_the_supervisor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    command = [sys.executable, "-c", "raise SystemExit(7)"]
    supervisor = Supervisor(command, dict(os.environ), 2, quick_s=30, crash_limit=3)
    assert supervisor.run() == CRASH_LOOP_EXIT
    deaths = [r.message for r in caplog.records if "died with exit status 7" in r.message]
    assert any(re.search(r"3 times in a row .* a crash loop", line) for line in deaths), deaths
    assert any("restarting it in 0.5 s" in line for line in deaths), deaths
