"""Sentinel: the pipeline follows the primary through a failover, and loses nothing acked."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import anyio
import pytest
from pydantic import SecretStr

from gristmill.connect import redis_client, resp_url
from gristmill.producer import Publisher
from gristmill.sentinel import SentinelAddress, parse
from gristmill.settings import Settings
from tests.apps import invoicer
from tests.beyond.sentinels import MASTER, sentinel_setup
from tests.bridges.feed import publish_until
from tests.helpers.procs import serve
from tests.pipeline.messages import Invoice, Order
from tests.typed_redis import xrange

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from redis.asyncio import Redis

    from tests.beyond.sentinels import SentinelSetup


def test_a_sentinel_url_names_sentinels_master_db_and_credentials() -> None:
    assert parse("redis+sentinel://u:p%40ss@a:1,b,c:3/main/2") == SentinelAddress(
        (("a", 1), ("b", 26379), ("c", 3)), "main", 2, "u", "p@ss"
    )
    for bad in ("redis+sentinel://a:1", "redis+sentinel://a:x/m", "redis+sentinel://a/m/x"):
        with pytest.raises(ValueError, match="expected redis\\+sentinel://"):
            parse(bad)


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    with sentinel_setup(tmp_path_factory.mktemp("sentinel")) as setup:
        yield setup


@pytest.mark.slow
@pytest.mark.fault
async def test_the_pipeline_follows_a_sentinel_failover_and_loses_nothing_acked(
    sentinels: SentinelSetup,
) -> None:
    settings = Settings(redis_url=SecretStr(sentinels.url))
    client = redis_client(sentinels.url, settings)
    publisher = Publisher(client, replicas=1, replica_timeout_ms=5000)
    before = sentinels.primary_port()
    assert await resp_url(sentinels.url, settings) == f"redis://127.0.0.1:{before}/0"
    env = {"GRISTMILL_REDIS_URL": sentinels.url, "GRISTMILL_BLOCK_MS": "200"}
    acked: list[str] = []

    async def place(numbers: range) -> None:
        for n in numbers:
            with contextlib.suppress(Exception):  # during the failover: not acked, not counted
                await publisher.publish(invoicer.INPUT, Order(id=f"o-{n}", sku="t", quantity=1))
                acked.append(f"o-{n}")
            await anyio.sleep(0.002)

    try:
        with serve("tests.apps.invoicer:app", env=env) as worker:
            await place(range(300))
            with sentinels.sentinel() as sentinel:
                assert sentinel.execute_command("SENTINEL", "FAILOVER", MASTER)
            asked = time.monotonic()
            switched = 0.0

            async def watch() -> None:
                nonlocal switched
                with anyio.fail_after(60):
                    while sentinels.primary_port() == before:
                        await anyio.sleep(0.05)
                switched = time.monotonic()

            async with anyio.create_task_group() as group:
                group.start_soon(watch)
                await place(range(300, 1500))  # publishes through the switch
            await place(range(1500, 1501))
            published = time.monotonic()
            with anyio.fail_after(90):  # reported, never asserted: the machine may be loaded
                while "o-1500" not in await _billed(client):
                    await anyio.sleep(0.05)
            log.info(
                "sentinel failover: sentinels named the new primary %.1f s after FAILOVER; "
                "an order published after the publishing through it was billed %.2f s later",
                switched - asked, time.monotonic() - published,
            )  # fmt: skip
            await place(range(1501, 1800))  # and after it
            with anyio.fail_after(90):
                while not set(acked) <= await _billed(client):
                    assert worker.alive, worker.output
                    await anyio.sleep(0.2)
            assert await worker.terminate_async() == 0, worker.output
    finally:
        await client.aclose()
    assert sentinels.primary_port() != before
    assert len(acked) >= 1500  # most publishes were acked, before, during and after


async def _billed(client: Redis) -> set[str]:
    entries = await xrange(client, invoicer.OUTPUT)
    found = set()
    for _, fields in entries:
        invoice = Invoice()
        invoice.ParseFromString(fields[b"payload"])
        found.add(invoice.order_id)
    return found


@pytest.mark.slow
async def test_a_bridge_writes_to_the_primary_the_sentinels_name(sentinels: SentinelSetup) -> None:
    """The bridge's own connections (its subscription and its writer) go to the primary the
    sentinels name, not to a sentinel."""
    settings = Settings(redis_url=SecretStr(sentinels.url))
    client = redis_client(sentinels.url, settings)
    await client.delete("ingest")
    env = {"GRISTMILL_REDIS_URL": sentinels.url, "GRISTMILL_HEALTH_PORT": "0"}
    try:
        with serve("tests.bridges.bridge_app:app", env=env) as worker:
            await worker.wait_for_line_async("bridge in:", within=60)
            await publish_until(client, 100)
            assert await worker.terminate_async() == 0, worker.output
    finally:
        await client.aclose()
