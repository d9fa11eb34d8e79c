"""Start-up checks that turn a wrong setup into one `error:` line and one `fix:` line.

An unreachable server is retried with backoff for `GRISTMILL_START_TIMEOUT` seconds (a
server started by the same deploy may come up a moment later); anything the server refuses
outright (a bad db index, a wrong password) fails at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import anyio
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gristmill.errors import ConfigError, GristmillError, SchemaError, ServerError
from gristmill.stopping import STOP_ASKED

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.1
LONGEST_DELAY_S = 2.0


def masked(url: str) -> str:
    """`url` with its password replaced by `***`, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


async def reach_server(redis: Redis, url: str, patience: float) -> None:
    """PING until the server answers; retry a refused or silent one for `patience` seconds.

    Raises:
        ServerError: If the server stays unreachable, or refuses us (db index, password).
    """
    deadline = anyio.current_time() + patience
    delay = FIRST_DELAY_S
    while True:
        try:
            await redis.ping()
        except (AuthenticationError, ResponseError) as exc:
            raise ServerError(f"the server at {masked(url)} refused us: {exc}") from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if STOP_ASKED.is_set() or anyio.current_time() + delay > deadline:
                raise ServerError(
                    f"cannot reach the server at {masked(url)} (tried for {patience:g} s): {exc}"
                ) from None
            if delay == FIRST_DELAY_S:
                log.warning(
                    "cannot reach the server at %s, retrying for up to %g s: %s",
                    masked(url), patience, exc,
                )  # fmt: skip
            await anyio.sleep(delay)
            delay = min(delay * 2, LONGEST_DELAY_S)
        else:
            return


def fix_for(error: GristmillError) -> str:
    """The `fix:` line for an error that stopped the start."""
    if isinstance(error, SchemaError):
        return (
            "make the schema compatible with the subject's latest version, or change the "
            "subject's mode (runtime schemas mode SUBJECT MODE); nothing was registered"
        )
    if isinstance(error, ServerError):
        return (
            "check GRISTMILL_REDIS_URL (host, port, db index, password, socket path) and that "
            "the server runs; GRISTMILL_START_TIMEOUT sets how long to wait for it"
        )
    if isinstance(error, ConfigError):
        if error.fix:
            return error.fix
        return "set the variable to a valid value (see README: settings) or unset it"
    return "see the message above; GRISTMILL_LOG_LEVEL=DEBUG shows the traceback"
