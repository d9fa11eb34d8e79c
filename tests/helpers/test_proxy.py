"""Each proxy mode against the real server, as redis-py sees it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tests.helpers.proxy import Mode, TcpProxy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gristmill.embedded import EmbeddedServer

pytestmark = pytest.mark.fault


def through(proxy: TcpProxy, socket_timeout: float = 5.0) -> Redis:
    # no retries: each failure surfaces once, as the mode makes it, not hidden by a reconnect
    return Redis(
        port=proxy.port, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
    )  # fmt: skip


@pytest.fixture
async def proxy(server: EmbeddedServer, redis: Redis) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(server.port) as running:
        yield running


async def test_pass_forwards_commands_and_replies(proxy: TcpProxy, redis: Redis) -> None:
    client = through(proxy)
    try:
        await client.set("k", b"v" * 200_000)  # bigger than one chunk
        assert await client.get("k") == b"v" * 200_000
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(100):
                pipe.incr("n")
            assert await pipe.execute() == list(range(1, 101))
    finally:
        await client.aclose()
    assert await redis.get("n") == b"100"


async def test_latency_keeps_order_and_delays_past_a_short_timeout(proxy: TcpProxy) -> None:
    proxy.latency = 0.2
    proxy.mode = Mode.LATENCY
    patient = through(proxy, socket_timeout=5.0)
    hasty = through(proxy, socket_timeout=0.05)
    try:
        async with patient.pipeline(transaction=False) as pipe:
            for n in range(20):
                pipe.rpush("order", n)
            await pipe.execute()
        assert await patient.lrange("order", 0, -1) == [str(n).encode() for n in range(20)]
        proxy.latency = 2.0
        with pytest.raises(RedisTimeoutError):
            await hasty.ping()
    finally:
        await patient.aclose()
        await hasty.aclose()


async def test_cut_resets_open_connections_and_refuses_new_ones(proxy: TcpProxy) -> None:
    client = through(proxy)
    try:
        assert await client.ping()
        assert proxy.open_connections == 1
        proxy.mode = Mode.CUT
        with pytest.raises(RedisConnectionError):
            await client.ping()
        fresh = through(proxy)
        with pytest.raises(RedisConnectionError):
            await fresh.ping()
        await fresh.aclose()
        proxy.mode = Mode.PASS
        assert await client.ping()  # redis-py reconnects on the next command
    finally:
        await client.aclose()


async def test_half_open_times_out_within_socket_timeout_with_retries_off(
    proxy: TcpProxy, redis: Redis
) -> None:
    client = through(proxy, socket_timeout=0.5)
    try:
        assert await client.ping()
        proxy.mode = Mode.HALF_OPEN
        with pytest.raises(RedisTimeoutError):
            await client.xadd("s", {"n": "1"})
        assert await redis.xlen("s") == 0  # held: not applied yet
        proxy.mode = Mode.PASS
        # the held XADD reaches the server after the heal: a timed-out write may be applied
        for _ in range(100):
            if await redis.xlen("s") == 1:
                break
            await asyncio.sleep(0.02)
        assert await redis.xlen("s") == 1
        assert await client.ping()
    finally:
        await client.aclose()


async def test_half_open_keeps_sockets_open(proxy: TcpProxy) -> None:
    client = through(proxy, socket_timeout=0.3)
    other = through(proxy, socket_timeout=0.3)
    try:
        assert await client.ping()
        proxy.mode = Mode.HALF_OPEN
        with pytest.raises(RedisTimeoutError):
            await other.ping()  # a new connection is accepted, then held
        assert proxy.accepted == 2
        assert proxy.open_connections >= 1  # nothing was reset by the proxy
    finally:
        proxy.mode = Mode.PASS
        await client.aclose()
        await other.aclose()


async def test_an_unreachable_target_resets_the_client() -> None:
    async with TcpProxy(1) as proxy:  # nothing listens on port 1
        client = through(proxy)
        with pytest.raises(RedisConnectionError):
            await client.ping()
        await client.aclose()
