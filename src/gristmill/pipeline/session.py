"""A processor's connections to the server: open, close, and ride out trouble with backoff.

An incident (a lost connection, a timeout, an error reply) closes every connection; the loop
then reconnects after a pause that grows with each failed try. It is logged once when it
starts and once when it ends, however many retries it takes.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import anyio

from gristmill.connect import resp_url, tls_context
from gristmill.errors import ReplyError
from gristmill.pipeline.resp import RespConnection

if TYPE_CHECKING:
    from gristmill.pipeline.batch import ProcessorStats
    from gristmill.settings import Settings

log = logging.getLogger(__name__)

RECONNECT_BACKOFF_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class Session:
    """The connections of one processor (named `gristmill:<group>:<role>` in CLIENT LIST)."""

    def __init__(
        self, url: str, settings: Settings, group: str, processor: str, stats: ProcessorStats
    ) -> None:
        self.url = url
        self.settings = settings
        self.group = group
        self.processor = processor
        self.stats = stats
        self._connections: list[RespConnection] = []
        self._incident_since: float | None = None
        self._incident_retries = 0

    async def open(self, role: str) -> RespConnection:
        """A new connection whose replies time out (set-up, groups and claims never hang)."""
        connection = await RespConnection.open(
            await resp_url(self.url, self.settings),  # h8: the sentinels' current primary
            connect_timeout=self.settings.connect_timeout,
            reply_timeout=self.settings.socket_timeout,
            name=f"gristmill:{self.group}:{role}",
            tls=tls_context(self.url, self.settings),  # h8: TLS settings, see connect.py
        )
        self._connections.append(connection)
        return connection

    async def close(self) -> None:
        """Close every connection and wait until they are closed."""
        connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.wait_closed()

    async def incident(self, exc: BaseException) -> bool:
        """Close everything, log the incident (once), pause before the next try.

        Returns True if the consumer group is gone (NOGROUP): the caller recreates it from
        the stream's start, so entries added since the stream came back are not skipped.
        """
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        await self.close()
        group_gone = isinstance(exc, ReplyError) and exc.code == "NOGROUP"
        if group_gone:
            log.error(
                "consumer group %s is gone (%s); recreating it from the stream's start",
                self.group, exc, extra={"processor": self.processor},
            )  # fmt: skip
        if self._incident_since is None:  # logged once per incident, not once per retry
            self._incident_since = time.monotonic()
            self._incident_retries = 0
            self.stats.incidents += 1
            log.warning(
                "server trouble, retrying with backoff: %s", self.stats.last_error,
                extra={"processor": self.processor},
            )  # fmt: skip
        pause = RECONNECT_BACKOFF_S[min(self._incident_retries, len(RECONNECT_BACKOFF_S) - 1)]
        self._incident_retries += 1
        await anyio.sleep(pause)
        return group_gone

    def recovered(self) -> None:
        """Connected and set up again: log the end of the incident, if there was one."""
        if self._incident_since is not None:
            log.warning(
                "recovered after %.1f s", time.monotonic() - self._incident_since,
                extra={"processor": self.processor},
            )  # fmt: skip
            self._incident_since = None
