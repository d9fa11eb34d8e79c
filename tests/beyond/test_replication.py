"""`Publisher(..., replicas=1)`: a publish returns once a replica has it; a failover keeps it.

A real primary and replica (two embedded servers, REPLICAOF). The primary is killed with -9 and
the replica promoted: every entry a replicas=1 publish returned for is there.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

import anyio
import pytest
from redis.asyncio import Redis

from gristmill.embedded import EmbeddedServer
from gristmill.errors import ReplicationTimeout
from gristmill.pipeline.publish import write_ahead
from gristmill.pipeline.resp import RespConnection
from gristmill.producer import Publisher
from tests.delivery import order
from tests.typed_redis import raw, xrange

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = [pytest.mark.slow, pytest.mark.fault]


async def _replicating(primary: Redis, replica: Redis) -> None:
    with anyio.fail_after(30):
        while True:
            link = (await replica.info("replication")).get("master_link_status")
            if link == "up" and (await primary.info("replication")).get("connected_slaves") == 1:
                return
            await anyio.sleep(0.05)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedServer, EmbeddedServer]]:
    with (
        EmbeddedServer.start(tmp_path / "primary") as primary,
        EmbeddedServer.start(tmp_path / "replica") as replica,
    ):
        to_primary, to_replica = Redis.from_url(primary.url), Redis.from_url(replica.url)
        try:
            await raw(to_replica, "REPLICAOF", "127.0.0.1", primary.port)
            await _replicating(to_primary, to_replica)
        finally:
            await to_primary.aclose()
            await to_replica.aclose()
        yield primary, replica
        os.kill(replica.process.pid, signal.SIGCONT)  # in case a test left it stopped


async def test_nothing_a_replicas_1_publish_returned_for_is_lost_in_a_failover(
    pair: tuple[EmbeddedServer, EmbeddedServer],
) -> None:
    primary, replica = pair
    to_primary, to_replica = Redis.from_url(primary.url), Redis.from_url(replica.url)
    try:
        durable = Publisher(to_primary, replicas=1, replica_timeout_ms=5000)
        acked = [await durable.publish("orders.placed", order(n)) for n in range(200)]
        await durable.publish_many("orders.placed", [order(n) for n in range(200, 3200)])
        last = await durable.publish("orders.placed", order(3200))
        os.kill(replica.process.pid, signal.SIGSTOP)  # the replica falls behind
        waiting = Publisher(to_primary, replicas=1, replica_timeout_ms=300)
        with pytest.raises(ReplicationTimeout, match="0 of 1 replicas acknowledged"):
            await waiting.publish("orders.placed", order(9999))
        assert await Publisher(to_primary).publish("orders.placed", order(9998))  # no wait
        primary.kill()  # kill -9: whatever the replica had not received is gone
        os.kill(replica.process.pid, signal.SIGCONT)
        await raw(to_replica, "REPLICAOF", "NO", "ONE")  # the failover: promote the replica
        ids = {entry_id.decode() for entry_id, _ in await xrange(to_replica, "orders.placed")}
    finally:
        await to_primary.aclose()
        await to_replica.aclose()
    assert set(acked) <= ids
    assert last in ids
    assert len(ids) >= 3201  # the 3,000 of publish_many too


async def test_a_waited_write_ahead_counts_the_replicas_the_master_has_online(
    pair: tuple[EmbeddedServer, EmbeddedServer],
) -> None:
    """write_ahead with replicas=1 (a cluster's write-ahead, here on one primary): it returns
    once the replica has the writes, refuses (ReplicationTimeout) while the replica is stopped
    but still connected, and sends no WAIT once the primary has no replica at all."""
    primary, replica = pair
    node = await RespConnection.open(primary.url, connect_timeout=2, reply_timeout=5)
    address = ("127.0.0.1", primary.port)

    async def master_of(slot: int) -> tuple[tuple[str, int], RespConnection]:
        return address, node

    seen: dict[tuple[str, int], int] = {}
    outputs = [(b"out", [b"n", str(n).encode()]) for n in range(10)]

    async def write() -> None:
        await write_ahead(master_of, outputs, replicas=1, timeout_ms=300, seen=seen)

    async def waits_sent() -> int:
        stats = await to_primary.info("commandstats")
        return int(stats.get("cmdstat_wait", {}).get("calls", 0))

    to_primary, to_replica = Redis.from_url(primary.url), Redis.from_url(replica.url)
    try:
        await write()
        assert seen == {address: 1}
        assert await to_replica.xlen("out") == 10  # WAIT returned: the replica has them
        os.kill(replica.process.pid, signal.SIGSTOP)
        with pytest.raises(ReplicationTimeout, match="0 of 1 replicas"):
            await write()
        os.kill(replica.process.pid, signal.SIGCONT)
        await raw(to_replica, "REPLICAOF", "NO", "ONE")  # the primary is left with none
        with anyio.fail_after(10):
            while seen[address]:
                with contextlib.suppress(ReplicationTimeout):  # it may still list the replica
                    await write()
        before = await waits_sent()
        await write()
        assert await waits_sent() == before  # no replica online: nothing to wait for
        assert await to_primary.xlen("out") >= 40
    finally:
        node.close()
        await to_primary.aclose()
        await to_replica.aclose()
