"""How every CLI command reaches the server: connect, run the work, close; errors name a fix."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gristmill.cli.output import fail
from gristmill.connect import redis_client, server_url, tls_failure
from gristmill.errors import ServerError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from redis.asyncio import Redis

    from gristmill.settings import Settings

T = TypeVar("T")

FIX_SERVER = "set GRISTMILL_REDIS_URL to a reachable server, or check the data dir"


def with_redis(
    settings: Settings, work: Callable[[Redis], Awaitable[T]], *, announce: bool = True
) -> T:
    """Run `work` with a client of the configured server (or the embedded one) and close it.

    A server that cannot be reached or refuses a command ends the command through `fail`,
    with the fix; other errors of `work` propagate to the caller.
    """

    async def main(url: str) -> T:
        client = redis_client(url, settings)
        try:
            return await work(client)
        finally:
            await client.aclose()

    try:
        with server_url(settings, announce=announce) as url:
            return asyncio.run(main(url))
    except ServerError as exc:
        fail(str(exc), FIX_SERVER)
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        fail(*(tls_failure(exc) or (f"cannot reach the server: {exc}", FIX_SERVER)))
    except RedisError as exc:
        fail(f"the server refused: {exc}", "check the server's ACL for this user")
