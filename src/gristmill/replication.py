"""Waiting for replicas: a write returns only once `replicas` replicas have it (WAIT).

Redis replicates asynchronously: a primary lost right after answering a write can take that
write with it when a replica is promoted. `WAIT n timeout` blocks until `n` replicas have
acknowledged every earlier write of the same connection, so the write and its WAIT go in one
pipeline (one connection); a WAIT sent on another pooled connection would wait for nothing.

WAIT makes a lost write unlikely, not impossible: a replica that acknowledged may itself be
lost, and Sentinel or Cluster may promote a replica that had not (they prefer the most
up-to-date one). A WAIT that times out leaves the write on the primary (maybe replicated
later): the caller sees ReplicationTimeout and may publish again, at least once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.asyncio.cluster import RedisCluster

from gristmill.errors import ReplicationTimeout

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

DEFAULT_TIMEOUT_MS = 2000


def add_wait(pipe: Pipeline, replicas: int, timeout_ms: int, redis: Redis, stream: str) -> None:
    """Queue a WAIT behind the writes to `stream` already in `pipe` (same connection: it
    covers them). On a cluster the WAIT goes to the master of the stream's slot, whose
    connection in the pipeline carries those writes."""
    if isinstance(redis, RedisCluster):
        node = redis.get_node_from_key(stream)
        pipe.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
    else:
        pipe.execute_command("WAIT", replicas, timeout_ms)


def check_wait(reply: Any, replicas: int, timeout_ms: int) -> None:
    """Raise ReplicationTimeout unless WAIT's `reply` counts at least `replicas` replicas.

    Raises:
        ReplicationTimeout: If fewer replicas acknowledged the writes within `timeout_ms`.
    """
    acknowledged = int(reply)
    if acknowledged < replicas:
        raise ReplicationTimeout(
            f"{acknowledged} of {replicas} replicas acknowledged the write within "
            f"{timeout_ms} ms; it is on the primary and may be lost in a failover"
        )


async def replicated_xadd(
    redis: Redis, stream: str, fields: Sequence[bytes], replicas: int, timeout_ms: int
) -> bytes:
    """XADD and WAIT in one round trip; the entry id once `replicas` replicas have it.

    Raises:
        ReplicationTimeout: If fewer replicas acknowledged it within `timeout_ms`.
    """
    async with redis.pipeline(transaction=False) as pipe:
        pipe.execute_command("XADD", stream, "*", *fields)
        add_wait(pipe, replicas, timeout_ms, redis, stream)
        entry_id, waited = await pipe.execute()
    check_wait(waited, replicas, timeout_ms)
    return entry_id  # type: ignore[no-any-return]
