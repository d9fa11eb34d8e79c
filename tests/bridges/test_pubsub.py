"""Bridges against the real server, in-process: single (fenced leader) and redundant modes."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
from pydantic import SecretStr

from gristmill import App, keys, scripts
from gristmill.bridges.buffer import BridgeBuffer, BridgeCounts
from gristmill.bridges.pubsub import Bridge
from gristmill.errors import ConfigError
from gristmill.runtime import Runtime
from gristmill.settings import Settings
from tests.telemetry.probes import free_port, get_async, metric_samples
from tests.typed_redis import xrange

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from redis.asyncio import Redis

    from gristmill.bridges.spec import BridgeSpec
    from gristmill.embedded import EmbeddedServer


def _spec(**options: object) -> BridgeSpec:
    return App("t").bridge(stream="ingest", **options)  # type: ignore[arg-type]


@pytest.fixture
def settings(server: EmbeddedServer) -> Settings:
    return Settings(redis_url=SecretStr(server.url), lease_ttl_ms=600)


class Running:
    """Bridges running in a task group until the block ends."""

    def __init__(self, bridges: list[Bridge]) -> None:
        self.bridges = bridges

    async def subscribed(self) -> None:
        with anyio.fail_after(20):
            while not any(b.subscribed and b.subscribed.is_set() for b in self.bridges):
                await anyio.sleep(0.01)


async def _publish(redis: Redis, channel: str, count: int, start: int = 0) -> None:
    for first in range(start, start + count, 500):
        async with redis.pipeline(transaction=False) as pipe:
            for number in range(first, min(first + 500, start + count)):
                pipe.publish(channel, b'{"n": %d}' % number)
            await pipe.execute()


async def _entries(redis: Redis, stream: str, expected: int) -> list[dict[bytes, bytes]]:
    with anyio.fail_after(30):
        while await redis.xlen(stream) < expected:
            await anyio.sleep(0.02)
    await anyio.sleep(0.2)  # nothing more arrives
    return [fields for _, fields in await xrange(redis, stream)]


@asynccontextmanager
async def bridges(redis: Redis, settings: Settings, *specs: BridgeSpec) -> AsyncIterator[Running]:
    url = str(settings.redis_url.get_secret_value() if settings.redis_url else "")
    running = Running([Bridge(spec, redis, settings, url) for spec in specs])
    async with anyio.create_task_group() as group:
        for bridge in running.bridges:
            group.start_soon(bridge.run)
        await running.subscribed()
        yield running
        group.cancel_scope.cancel()


async def test_the_leader_writes_every_message_raw_and_in_order(
    redis: Redis, settings: Settings
) -> None:
    async with bridges(redis, settings, _spec(channel="in"), _spec(channel="in")) as running:
        await _publish(redis, "in", 3000)
        entries = await _entries(redis, "ingest", 3000)
        assert [e[b"payload"] for e in entries] == [b'{"n": %d}' % n for n in range(3000)]
        assert all(set(e) == {b"payload"} for e in entries)
        leaders = [b for b in running.bridges if b.counts.terms]
        assert len(leaders) == 1  # the other stands by
        assert leaders[0].counts.written == 3000


async def test_a_pattern_bridge_names_the_channel(redis: Redis, settings: Settings) -> None:
    async with bridges(redis, settings, _spec(pattern="orders.*")) as _:
        await redis.publish("orders.eu", b"a")
        await redis.publish("orders.us", b"b")
        entries = await _entries(redis, "ingest", 2)
        assert entries == [{b"payload": b"a", b"channel": b"orders.eu"},
                           {b"payload": b"b", b"channel": b"orders.us"}]  # fmt: skip


async def test_a_leader_that_lost_its_lease_cannot_write(redis: Redis, settings: Settings) -> None:
    async with bridges(redis, settings, _spec(channel="in")) as running:
        (bridge,) = running.bridges
        await _publish(redis, "in", 10)
        await _entries(redis, "ingest", 10)
        await redis.set(keys.lease(keys.bridge_role("in")), "someone-else")  # a successor
        await _publish(redis, "in", 10, start=10)
        with anyio.fail_after(20):
            while bridge.counts.dropped_fenced < 1:
                await anyio.sleep(0.02)
        assert await redis.xlen("ingest") == 10


async def test_redundant_replicas_write_each_message_once(redis: Redis, settings: Settings) -> None:
    spec = _spec(channel="in", redundant=True)
    async with bridges(redis, settings, spec, spec, spec) as running:
        with anyio.fail_after(20):
            while not all(b.subscribed and b.subscribed.is_set() for b in running.bridges):
                await anyio.sleep(0.01)
        await _publish(redis, "in", 2000)
        with anyio.fail_after(30):
            while sum(b.counts.written + b.counts.skipped for b in running.bridges) < 6000:
                await anyio.sleep(0.02)
        entries = await _entries(redis, "ingest", 2000)
        assert sorted(e[b"payload"] for e in entries) == sorted(
            b'{"n": %d}' % n for n in range(2000)
        )
        assert sum(b.counts.skipped for b in running.bridges) == 4000


async def test_redundant_by_field_keeps_distinct_ids_with_equal_bodies(
    redis: Redis, settings: Settings
) -> None:
    spec = _spec(channel="in", redundant=True, dedup_field="id")
    async with bridges(redis, settings, spec) as _:
        for body in (b'{"id": 1, "v": 0}', b'{"id": 2, "v": 0}', b'{"v": 0, "id": 1}'):
            await redis.publish("in", body)
        entries = await _entries(redis, "ingest", 2)
        assert [e[b"payload"] for e in entries] == [b'{"id": 1, "v": 0}', b'{"id": 2, "v": 0}']


def test_the_buffer_drops_and_reports_once_per_incident() -> None:
    counts = BridgeCounts()
    buffer = BridgeBuffer(3, counts)
    assert [buffer.put(b"c", b"%d" % n) for n in range(6)] == [False] * 3 + [True, False, False]
    batch, ended = buffer.take(2)
    assert batch == [(b"c", b"0"), (b"c", b"1")]
    assert ended == 3
    assert buffer.take(5) == ([(b"c", b"2")], 0)
    assert buffer.put(b"c", b"x") is False
    assert (counts.received, counts.dropped_full) == (7, 3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of channel= or pattern="),
        ({"channel": "a", "pattern": "b*"}, "exactly one of"),
        ({"channel": "a", "dedup_field": "id"}, "only applies with redundant=True"),
        ({"channel": "a", "batch": 5000}, "batch= must be 1..1000"),
        ({"channel": "a", "buffer": 10}, "at least one batch"),
    ],
)
def test_bad_declarations_fail_at_import(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _spec(**options)


async def test_a_runtime_exports_each_bridge_s_counts_as_metrics(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("ingest")
    app.bridge(channel="metered", stream="ingest", name="metered")
    port = free_port()
    runtime = Runtime(app, Settings(health_port=port, lease_ttl_ms=600), server.url)
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        with anyio.fail_after(20):
            while not (runtime.bridges[0].subscribed and runtime.bridges[0].subscribed.is_set()):
                await anyio.sleep(0.01)
            await _publish(redis, "metered", 1200)
            await _entries(redis, "ingest", 1200)
            status, body = await get_async(f"http://127.0.0.1:{port}/metrics")
        runtime.stop()
    assert status == 200
    samples = metric_samples(body, "gristmill_bridge")
    counted = 'gristmill_bridge_messages_total{bridge="metered",outcome="%s"}'
    assert samples[counted % "received"] == 1200
    assert samples[counted % "written"] == 1200
    assert samples[counted % "dropped_full"] == 0
    assert samples[counted % "dropped_fenced"] == 0
    assert samples['gristmill_bridge_buffered{bridge="metered"}'] == 0


async def test_the_epoch_fence_refuses_an_older_leader_once_a_newer_one_wrote(
    redis: Redis,
) -> None:
    """bridge_write's cluster mode: the token's epoch against the stream's fence key."""
    write = scripts.load("bridge_write")
    fence = keys.bridge_fence("ingest")

    async def as_leader(epoch: int) -> int:
        args: list[str | bytes | int] = [f"{epoch}:host:1:abc", 0, 0, "epoch", "in", b"payload"]
        return int(await write(redis, [fence, "ingest"], args))

    assert await as_leader(5) == 1
    assert await as_leader(4) == -1  # the older term is refused, and writes nothing
    assert await as_leader(5) == 1
    assert await as_leader(6) == 1
    assert await as_leader(5) == -1
    assert await redis.get(fence) == b"6"
    assert await redis.xlen("ingest") == 3
