"""The fault tooling end to end: `runtime serve` killed with -9 mid-stream loses nothing.

A worker process is killed while it works through a backlog; a second one reclaims what the
first left pending. The ledger counts every order id: none lost, none unexpected, duplicates
at most one batch (the entries the dead worker had read but not committed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gristmill.envelope import open_fields
from gristmill.producer import Publisher
from tests.helpers.ledger import Ledger
from tests.helpers.procs import serve
from tests.pipeline.messages import Invoice, Order

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

pytestmark = [pytest.mark.slow, pytest.mark.fault]
log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]  # `runtime serve` imports the app from its cwd
ORDERS = 2000
BATCH = 50


async def invoice_ids(redis: Redis) -> list[str]:
    send = redis.execute_command
    reply = await send(b"XRANGE", "invoices", "-", "+")  # type: ignore[no-untyped-call]
    return [
        Invoice.FromString(open_fields(fields, 1 << 20).payload).order_id for _, fields in reply
    ]


async def test_kill9_of_a_worker_mid_stream_loses_nothing(
    server: EmbeddedServer, redis: Redis
) -> None:
    ledger: Ledger[str] = Ledger()
    orders = [Order(id=f"o-{n}", sku="tea", quantity=n) for n in range(ORDERS)]
    for order in orders:
        ledger.attempt(order.id)
    await Publisher(redis).publish_many("orders", orders)
    for order in orders:
        ledger.ack(order.id)
    env = {
        "GRISTMILL_REDIS_URL": server.url, "GRISTMILL_CLAIM_IDLE": "1",
        "GRISTMILL_BATCH": str(BATCH), "GRISTMILL_BLOCK_MS": "100",
    }  # fmt: skip
    target = "tests.failures.echo_app:app"
    with serve(target, env=env, cwd=ROOT) as first:
        await first.wait_for_line_async("serving 1 processors", within=60)
        deadline = time.monotonic() + 60
        while await redis.xlen("invoices") < ORDERS // 5:
            assert first.alive, first.output
            assert time.monotonic() < deadline, first.output
            await asyncio.sleep(0.005)
        assert first.kill9() == -9
    killed_at = await redis.xlen("invoices")
    assert killed_at < ORDERS  # the kill landed mid-stream
    with serve(target, env=env, cwd=ROOT) as second:
        await second.wait_for_line_async("serving 1 processors", within=60)
        deadline = time.monotonic() + 60
        while (
            len(set(await invoice_ids(redis))) < ORDERS
            or (await redis.xpending("orders", "echo.bill"))["pending"]
        ):
            assert second.alive, second.output
            assert time.monotonic() < deadline, second.output
            await asyncio.sleep(0.05)
        assert await second.terminate_async() == 0
        assert second.find_line("stopped cleanly") is not None
    verdict = ledger.check(observed=await invoice_ids(redis))
    log.info("killed after %d invoices: %s", killed_at, verdict.summary())
    assert verdict.ok, verdict.summary()
    assert sum(times - 1 for times in verdict.duplicated.values()) <= BATCH, verdict.summary()
