"""Where the server is and how we talk to it: a configured URL, or the embedded server.

Without a configured URL, every gristmill process on one data dir shares one embedded server
(`gristmill.shared_server`): the first starts it on the data dir's stable port, the others
attach, and each says on stderr which server it uses.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import sys
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import redis as sync_redis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from gristmill import sentinel
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
    """A redis-py asyncio client with deliberate timeouts and a one-retry budget.

    A redis+sentinel:// URL gives a client of the current primary that follows failovers.
    """
    options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), CLIENT_RETRIES),
        "health_check_interval": 30,
        "client_name": "gristmill",
    }
    if sentinel.is_sentinel_url(url):
        return sentinel.client(url, options)
    if is_cluster_url(url):
        node_url = plain_node_url(url)
        cluster = RedisCluster.from_url(node_url, **options, **tls_options(node_url, settings))
        return cast("Redis", cluster)  # the same commands; the sweeper checks for RedisCluster
    return Redis.from_url(url, **options, **tls_options(url, settings))


# -- Redis Cluster: redis-py's cluster client off the hot path (pipeline/cluster.py has the rest) --

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


async def unparsed(redis: Redis, key: str, *args: Any) -> Any:
    """The reply to `args` as the server sent it; `key` is the key the command touches.

    A bytes command name skips redis-py's reply callbacks (which fold an entry's fields into
    a dict, losing a repeated field name). redis-py's cluster client routes only str names,
    so on a cluster the command goes straight to the master of `key`'s slot.
    """
    if isinstance(redis, RedisCluster):
        node = await cluster_master(redis, key)
        return await node.execute_command(*args)
    send = redis.execute_command
    return await send(*args)  # type: ignore[no-untyped-call]


async def cluster_master(redis: RedisCluster, key: str, *, fresh: bool = False) -> ClusterNode:
    """The master of `key`'s slot in redis-py's slot map; `fresh` reads the map again first
    (a connection of our own, opened after a failover, must not follow the old map).

    Raises:
        ConnectionError: If no master serves the slot now.
    """
    await redis.initialize()  # a no-op once the slot map is read
    if fresh:
        await redis.nodes_manager.initialize()
    node = redis.get_node_from_key(key)
    if node is None:
        raise ConnectionError(f"no master of the cluster serves the slot of {key!r} now")
    return node


def is_cluster_url(url: str) -> bool:
    """True for redis+cluster:// (and rediss+cluster://) URLs: any node of a cluster."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def plain_node_url(url: str) -> str:
    """The redis:// (or rediss://) URL of the seed node a cluster URL names."""
    scheme, _, rest = url.partition("://")
    return f"{CLUSTER_SCHEMES.get(scheme, scheme)}://{rest}"


async def resp_url(url: str, settings: Settings) -> str:
    """The URL the hot path's RESP connection opens now: `url`, or the sentinels' primary.

    Raises:
        ServerError: If `url` is a sentinel URL and no sentinel names a primary.
    """
    if sentinel.is_sentinel_url(url):
        return await sentinel.primary_url(url, connect_timeout=settings.connect_timeout)
    return url


# -- TLS: one reading of the settings for redis-py and for the hot path's own connection -------

TLS_SCHEMES = ("rediss", "valkeys")
FIX_TLS_CA = "set GRISTMILL_TLS_CA_FILE to the PEM of the CA that signed the server's certificate"


FIX_TLS_HOSTNAME = (
    "connect by a name the certificate holds, or set GRISTMILL_TLS_CHECK_HOSTNAME=false"
)


def uses_tls(url: str) -> bool:
    """True for rediss:// (and valkeys://) URLs."""
    return urlsplit(url).scheme in TLS_SCHEMES


def tls_options(url: str, settings: Settings) -> dict[str, Any]:
    """The redis-py keyword arguments for the TLS settings; empty for a plain-TCP URL."""
    if not uses_tls(url):
        return {}
    cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file
    return {
        "ssl_ca_certs": str(ca) if ca else None,
        "ssl_certfile": str(cert) if cert else None,
        "ssl_keyfile": str(key) if key else None,
        "ssl_check_hostname": settings.tls_check_hostname,
    }


def tls_context(url: str, settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of a RESP connection to `url`, as the settings ask; None for plain TCP.

    The server's certificate is always verified, against GRISTMILL_TLS_CA_FILE if set, else
    the system trust store; only the host name check can be turned off.
    """
    if not uses_tls(url):
        return None
    ca = settings.tls_ca_file
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    context.check_hostname = settings.tls_check_hostname
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


def tls_failure(exc: BaseException) -> tuple[str, str] | None:
    """A one-line problem and its fix if `exc` (or its cause) is a failed TLS handshake."""
    seen: BaseException | None = exc
    text = ""
    while seen is not None:
        text += f" {seen}"
        if isinstance(seen, ssl.SSLCertVerificationError):
            reason = seen.verify_message or seen.reason or "certificate verify failed"
            if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
                return (
                    f"TLS: the server's certificate does not name this host ({reason})",
                    FIX_TLS_HOSTNAME,
                )
            return f"TLS: the server's certificate is not trusted ({reason})", FIX_TLS_CA
        seen = seen.__cause__ or seen.__context__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS: the server's certificate is not trusted", FIX_TLS_CA
    if any(marker in text for marker in ("CERTIFICATE_REQUIRED", "certificate required")):
        return (
            "TLS: the server requires a client certificate",
            "set GRISTMILL_TLS_CERT_FILE and GRISTMILL_TLS_KEY_FILE to this service's PEM files",
        )
    return None


def tls_problem(settings: Settings) -> tuple[str, str] | None:
    """Try one TLS handshake with the configured server: a problem and its fix, or None.

    For `runtime serve`, before the processors start: a wrong CA or a missing client
    certificate is a configuration error, reported in one line rather than retried. Anything
    else (a server still starting) is left to the runtime's own reconnecting.
    """
    url = settings.redis_url.get_secret_value() if settings.redis_url else ""
    if not uses_tls(url):
        return None
    client = sync_redis.Redis.from_url(
        url, socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout, **tls_options(url, settings),
    )  # fmt: skip
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        return tls_failure(exc)
    finally:
        client.close()
    return None
