"""gristmill's client (`connect.redis_client`) through the fault proxy: a half-open server
surfaces after one retry, not redis-py's ten, and a cut connection recovers once healed."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gristmill.connect import CLIENT_RETRIES, redis_client
from gristmill.settings import Settings
from tests.helpers.proxy import Mode, TcpProxy

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

pytestmark = pytest.mark.fault


def settings(socket_timeout: float) -> Settings:
    return Settings(socket_timeout=socket_timeout, connect_timeout=socket_timeout)


async def test_half_open_surfaces_after_one_retry(server: EmbeddedServer, redis: Redis) -> None:
    async with TcpProxy(server.port) as proxy:
        client = redis_client(f"redis://127.0.0.1:{proxy.port}/0", settings(0.3))
        try:
            assert await client.ping()
            assert proxy.accepted == 1
            proxy.mode = Mode.HALF_OPEN
            with pytest.raises(RedisTimeoutError):
                await client.xadd("orders", {"n": "1"})
            # the first try and CLIENT_RETRIES reconnects, each ended by socket_timeout
            assert proxy.accepted == 1 + CLIENT_RETRIES
            proxy.mode = Mode.PASS
            assert await client.ping()
            # the held XADD arrives after the heal: a timed-out write counts as "maybe written"
            # (the retry's may not: its connection can time out in its own handshake first)
            for _ in range(100):
                if await redis.xlen("orders") >= 1:
                    break
                await asyncio.sleep(0.02)
            assert 1 <= await redis.xlen("orders") <= 1 + CLIENT_RETRIES
        finally:
            await client.aclose()


async def test_a_cut_connection_recovers_when_healed(server: EmbeddedServer, redis: Redis) -> None:
    async with TcpProxy(server.port) as proxy:
        client = redis_client(f"redis://127.0.0.1:{proxy.port}/0", settings(1.0))
        try:
            await client.xadd("orders", {"n": "1"})
            proxy.mode = Mode.CUT
            with pytest.raises(RedisConnectionError):
                await client.xadd("orders", {"n": "2"})
            proxy.mode = Mode.PASS
            await client.xadd("orders", {"n": "3"})
            send = redis.execute_command
            reply = await send(b"XRANGE", "orders", "-", "+")  # type: ignore[no-untyped-call]
            assert [fields[1] for _, fields in reply] == [b"1", b"3"]
        finally:
            await client.aclose()
