"""Sentinel: find the current primary by asking the sentinels, on every (re)connect.

    GRISTMILL_REDIS_URL=redis+sentinel://[user:password@]s1:26379,s2:26379,s3:26379/mymaster[/db]

The hosts are sentinels; `mymaster` is the name they monitor; user and password are the
primary's. redis-py clients get a Sentinel connection pool, which asks for the primary on
each new connection and drops connections to a node that turned replica (READONLY). The hot
path's RESP connections call `primary_url` before each connect: after a failover their
connections are killed (Sentinel kills a reconfigured node's clients) or refused (READONLY),
the processor reconnects, and the sentinels name the new primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from gristmill.errors import ServerError

SCHEMES = ("redis+sentinel", "valkey+sentinel")
DEFAULT_SENTINEL_PORT = 26379
SHAPE = "redis+sentinel://[user:password@]host:port[,host:port...]/master-name[/db]"


@dataclass(frozen=True)
class SentinelAddress:
    """A parsed sentinel URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    """True for redis+sentinel:// (and valkey+sentinel://) URLs."""
    return urlsplit(url).scheme in SCHEMES


def parse(url: str) -> SentinelAddress:
    """The sentinels, the master name, the db and the primary's credentials of `url`.

    Raises:
        ValueError: If `url` is not of the shape SHAPE (the message never holds the password).
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"expected {SHAPE}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        if not name or (port and not port.isdigit()):
            raise ValueError(f"a sentinel address is not host:port; expected {SHAPE}")
        sentinels.append((name, int(port) if port else DEFAULT_SENTINEL_PORT))
    path = [piece for piece in parts.path.split("/") if piece]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"the URL names no master (or a bad db); expected {SHAPE}")
    username = password = None
    if credentials:
        user, has_password, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    return SentinelAddress(
        tuple(sentinels), path[0], int(path[1]) if len(path) == 2 else 0, username, password
    )


class _PrimaryClient(Redis):
    """A client of the primary that also closes its connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        pool = self.connection_pool
        try:
            await super().aclose(close_connection_pool)
        finally:
            manager = getattr(pool, "sentinel_manager", None)
            for node in manager.sentinels if manager is not None else ():
                await node.aclose()


def client(url: str, options: dict[str, Any]) -> Redis:
    """A redis-py client of the primary that follows it across failovers."""
    address = parse(url)
    # options are the plain client's (timeouts, retry, name); they apply to the sentinels too
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call, unused-ignore]
    return sentinel.master_for(  # type: ignore[no-any-return]
        address.service, redis_class=_PrimaryClient, db=address.db, username=address.username,
        password=address.password, **options,
    )  # fmt: skip


async def primary_url(url: str, *, connect_timeout: float) -> str:
    """A redis:// URL of the primary the sentinels name now (with the URL's credentials).

    Raises:
        ServerError: If no sentinel answers, or none knows a primary by that name.
    """
    address = parse(url)
    limits = {"socket_timeout": connect_timeout, "socket_connect_timeout": connect_timeout}
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=limits)  # type: ignore[no-untyped-call, unused-ignore]
    try:
        host, port = await sentinel.discover_master(address.service)
    except Exception as exc:  # redis-py raises MasterNotFoundError for every cause
        raise ServerError(f"sentinels found no primary {address.service!r}: {exc}") from exc
    finally:
        for node in sentinel.sentinels:
            await node.aclose()
    login = ""
    if address.password is not None:
        login = (
            f"{quote(address.username or 'default', safe='')}:{quote(address.password, safe='')}@"
        )
    return f"redis://{login}{host}:{port}/{address.db}"
