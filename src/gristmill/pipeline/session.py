"""A processor's connections to the server: open, close, and ride out trouble with backoff.

An incident (a lost connection, a timeout, an error reply) closes every connection; the loop
then reconnects after a pause that grows with each failed try. It is logged once when it
starts and once when it ends, however many retries it takes.

On Redis Cluster (a `redis+cluster://` URL) the connections go to the master that owns the
processor's home slot, found in the slot map, which is read again after every incident: a
redirect is an incident too (cluster.py).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import anyio

from gristmill.connect import is_cluster_url, plain_node_url, resp_url, tls_context
from gristmill.errors import ReplicationTimeout, ReplyError
from gristmill.pipeline.cluster import Address, SlotMap, node_url
from gristmill.pipeline.resp import RespConnection

if TYPE_CHECKING:
    from gristmill.pipeline.batch import ProcessorStats
    from gristmill.settings import Settings

log = logging.getLogger(__name__)

RECONNECT_BACKOFF_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# what a processor rides out with `incident`: the batch in hand stays unacked and is redone
INCIDENTS = (ConnectionError, OSError, TimeoutError, ReplyError, ReplicationTimeout)


class Session:
    """The connections of one processor (named `gristmill:<group>:<role>` in CLIENT LIST)."""

    def __init__(
        self,
        url: str,
        settings: Settings,
        group: str,
        processor: str,
        stats: ProcessorStats,
        home_slot: int | None = None,
    ) -> None:
        self.url = url
        self.cluster = is_cluster_url(url)
        self.home_slot = home_slot  # on a cluster: the slot of every stream this session reads
        self._slot_map: SlotMap | None = None
        self._nodes: dict[Address, RespConnection] = {}
        # per master: the replicas its ROLE listed at our last write-ahead (publish.py)
        self.replicas_seen: dict[Address, int] = {}
        self.settings = settings
        self.group = group
        self.processor = processor
        self.stats = stats
        self._known_masters: list[Address] = []  # where to read the map if the seed is down
        self._connections: list[RespConnection] = []
        self._incident_since: float | None = None
        self._incident_retries = 0

    async def open(self, role: str) -> RespConnection:
        """A new connection whose replies time out (set-up, groups and claims never hang)."""
        if self.cluster:
            assert self.home_slot is not None
            url = node_url(plain_node_url(self.url), await self._owner(self.home_slot))
        else:
            url = await resp_url(self.url, self.settings)  # h8: the sentinels' current primary
        connection = await self._connect(url, role)
        self._connections.append(connection)
        return connection

    async def _connect(self, url: str, role: str) -> RespConnection:
        return await RespConnection.open(
            url,
            connect_timeout=self.settings.connect_timeout,
            reply_timeout=self.settings.socket_timeout,
            name=f"gristmill:{self.group}:{role}",
            tls=tls_context(self.url, self.settings),  # h8: TLS settings, see connect.py
        )

    async def node(self, slot: int) -> tuple[Address, RespConnection]:
        """On a cluster, the master of `slot` and a connection to it (one per master, kept)."""
        address = await self._owner(slot)
        connection = self._nodes.get(address)
        if connection is None:
            url = node_url(plain_node_url(self.url), address)
            connection = self._nodes[address] = await self._connect(url, "write")
            self._connections.append(connection)
        return address, connection

    async def _owner(self, slot: int) -> Address:
        """The master of `slot` in the slot map (read from a node if there is none yet).

        Raises:
            ConnectionError: If no node answers, or no master serves the slot (CLUSTERDOWN):
                an incident, tried again after the backoff.
        """
        if self._slot_map is None:
            self._slot_map = await self._read_slot_map()
        owner = self._slot_map.owner(slot)
        if owner is None:
            self._slot_map = None
            raise ConnectionError(f"no master serves hash slot {slot} of the cluster now")
        return owner

    async def _read_slot_map(self) -> SlotMap:
        """CLUSTER SLOTS from the seed node, or from a master known before if it is down."""
        seeds = [plain_node_url(self.url)]
        seeds += [node_url(seeds[0], address) for address in self._known_masters]
        failure: BaseException | None = None
        for seed in dict.fromkeys(seeds):
            try:
                connection = await self._connect(seed, "slots")
            except (ConnectionError, OSError, TimeoutError) as exc:
                failure = exc
                continue
            try:
                slot_map = SlotMap.parse(await connection.call(b"CLUSTER", b"SLOTS"))
            except (ConnectionError, OSError, TimeoutError, ReplyError, ValueError) as exc:
                failure = exc
                continue
            finally:
                connection.close()
            self._known_masters = sorted(slot_map.masters)
            return slot_map
        raise ConnectionError(f"no node of the cluster gave its slot map: {failure}")

    async def close(self) -> None:
        """Close every connection and wait until they are closed."""
        connections, self._connections = self._connections, []
        self._nodes = {}
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
        self._slot_map = None  # a redirect, a failover: ask the cluster where the slots are
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
