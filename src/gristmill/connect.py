"""Where the server is and how we talk to it: a configured URL, or the embedded server.

Without a configured URL, every gristmill process on one data dir shares one embedded server
(`gristmill.shared_server`): the first starts it on the data dir's stable port, the others
attach, and each says on stderr which server it uses.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TYPE_CHECKING

import redis as sync_redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from gristmill.errors import ConfigError
from gristmill.shared_server import SharedServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gristmill.settings import Settings

log = logging.getLogger(__name__)

# One retry, not redis-py's ten: a blackholed server must surface within seconds. A retried
# write may have been applied the first time: callers treat a timeout as "maybe written".
CLIENT_RETRIES = 1


@contextlib.contextmanager
def server_url(settings: Settings, *, announce: bool = True, keep: bool = False) -> Iterator[str]:
    """The URL to use: the configured one, or the data dir's embedded server's.

    With `keep` (long-running processes), the embedded server is watched and started again on
    the same port if it goes away while we run.

    Raises:
        ServerError: If the embedded server cannot start.
    """
    if settings.redis_url is not None:
        yield settings.redis_url.get_secret_value()
        return
    data_dir = settings.data_dir.resolve()
    shared = SharedServer(data_dir)
    try:
        attachment = shared.open(keep=keep)
        if announce:
            # the one place a library line goes to stderr unasked: users must know
            how = "started embedded server" if attachment.started else "using embedded server"
            sys.stderr.write(
                f"gristmill: no GRISTMILL_REDIS_URL set; {how} {attachment.url} "
                f"with data in {data_dir}\n"
            )
        if attachment.fresh:  # even when not announcing: an empty server surprises everyone
            sys.stderr.write(
                f"gristmill: {data_dir} held no data: this is a new, empty server; to "
                "reach a service started elsewhere, run from its directory or pass --url\n"
            )
        yield attachment.url
    finally:
        shared.close()


def require_async_client(redis: object) -> None:
    """Refuse a synchronous redis-py client where an asyncio one is needed, saying which.

    Raises:
        ConfigError: If `redis` is a `redis.Redis` or `redis.RedisCluster` (the sync ones).
    """
    if isinstance(redis, (sync_redis.Redis, sync_redis.RedisCluster)):
        raise ConfigError(
            f"got a synchronous {type(redis).__name__}; gristmill needs an asyncio client: "
            "`from redis.asyncio import Redis` and pass `Redis.from_url(url)`"
        )


def redis_client(url: str, settings: Settings) -> Redis:
    """A redis-py asyncio client with deliberate timeouts and a one-retry budget."""
    return Redis.from_url(
        url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), CLIENT_RETRIES),
        health_check_interval=30,
        client_name="gristmill",
    )
