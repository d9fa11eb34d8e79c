from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill.errors import ReplyError
from gristmill.pipeline.resp import RespConnection
from tests.typed_redis import raw

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer


async def test_call_and_pipeline_keep_replies_in_order(
    server: EmbeddedServer, redis: Redis
) -> None:
    connection = await RespConnection.open(server.url, connect_timeout=2)
    try:
        assert await connection.call(b"SET", b"k", b"v") == b"OK"
        replies = await connection.pipeline([(b"GET", b"k"), (b"INCR", b"n"), (b"INCR", b"n")])
        assert replies == [b"v", 1, 2]
        with pytest.raises(ReplyError) as caught:
            await connection.call(b"XGROUP", b"CREATE", b"nostream", b"g", b"$")
        assert "no such key" in str(caught.value) or caught.value.code == "ERR"
        assert await connection.call(b"PING") == b"PONG"
    finally:
        connection.close()


async def test_a_cancelled_call_does_not_shift_later_replies(
    server: EmbeddedServer, redis: Redis
) -> None:
    connection = await RespConnection.open(server.url, connect_timeout=2)
    try:
        with anyio.move_on_after(0.05):
            await connection.call(b"BLPOP", b"empty", b"0.3")
        # the BLPOP reply (nil, after 0.3 s) must be swallowed, not handed to this GET
        await redis.set("x", "1")
        assert await connection.call(b"GET", b"x") == b"1"
    finally:
        connection.close()


async def test_auth_and_select_from_the_url(server: EmbeddedServer, redis: Redis) -> None:
    await raw(redis, "ACL", "SETUSER", "svc", "on", ">pw", "~*", "+@all")
    url = f"redis://svc:pw@127.0.0.1:{server.port}/3"
    connection = await RespConnection.open(url, connect_timeout=2)
    try:
        await connection.call(b"SET", b"in-db-3", b"1")
        assert await redis.get("in-db-3") is None
        assert await connection.call(b"ACL", b"WHOAMI") == b"svc"
    finally:
        connection.close()
        await raw(redis, "ACL", "DELUSER", "svc")


async def test_connection_refused_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError):
        await RespConnection.open("redis://127.0.0.1:1/0", connect_timeout=1)
