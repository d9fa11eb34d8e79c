"""Where the server is and how we talk to it: a configured URL, or the embedded server.

The embedded server records its port in `<data_dir>/server.json`; a second gristmill process
on the same data directory (a CLI command, another `runtime serve`) attaches to it rather than
starting a second server on the same AOF. The process that started it stops it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from gristmill.embedded import EmbeddedServer, answers_ping

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from gristmill.settings import Settings

log = logging.getLogger(__name__)

# One retry, not redis-py's ten: a blackholed server must surface within seconds. A retried
# write may have been applied the first time: callers treat a timeout as "maybe written".
CLIENT_RETRIES = 1


def _record_path(data_dir: Path) -> Path:
    return data_dir / "server.json"


def _attachable(data_dir: Path) -> str | None:
    try:
        record = json.loads(_record_path(data_dir).read_text())
        port = int(record["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"redis://127.0.0.1:{port}/0" if answers_ping(port) else None


@contextlib.contextmanager
def server_url(settings: Settings, *, announce: bool = True) -> Iterator[str]:
    """The URL to use: the configured one, or an embedded server's (started if none runs).

    Raises:
        ServerError: If the embedded server cannot start.
    """
    if settings.redis_url is not None:
        yield settings.redis_url.get_secret_value()
        return
    data_dir = settings.data_dir.resolve()
    attached = _attachable(data_dir)
    if attached is not None:
        yield attached
        return
    with EmbeddedServer.start(data_dir) as server:
        record = {"port": server.port, "pid": server.process.pid, "owner_pid": os.getpid()}
        _record_path(data_dir).write_text(json.dumps(record))
        if announce:
            # the one place a library line goes to stderr unasked: users must know
            sys.stderr.write(
                f"gristmill: no GRISTMILL_REDIS_URL set; started embedded {server.binary.name} "
                f"on {server.url} with data in {data_dir}\n"
            )
        try:
            yield server.url
        finally:
            _record_path(data_dir).unlink(missing_ok=True)


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
