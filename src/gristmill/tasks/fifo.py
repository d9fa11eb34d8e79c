"""FIFO queues: one task at a time across every replica, in enqueue order, retries in place.

A FIFO queue's processor (batch of 10, concurrency 1, so its tasks run one after the other in
stream order) runs only in the replica that holds the queue's lease (`fifo:<stream>`). A new
holder first claims every entry still pending in the group (the previous holder's: it died, or
lost the lease), and reads them all in its first batch, before any newer entry. A failed task is
retried inside its run (tasks/worker.py), so the tasks behind it wait for it; once it gives up it
is dead-lettered and the queue moves on.

Ordered: the runs of one queue (or, with `fifo_key`, of one key: each key's tasks go to one of
the queue's partitions by CRC-32 of the key, and each partition is its own FIFO queue).
Not ordered: tasks of different keys, and a run repeated after its worker was killed mid-run
(at least once: the repeat comes before every later task, but after the first, cut-short run).
A holder stopped (SIGSTOP) past the lease's ttl may still finish the run in hand while the next
holder starts: keep the lease ttl longer than such pauses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
from redis.exceptions import RedisError

from gristmill.timing.leader import Lease

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.pipeline.processor import ProcessorLoop

log = logging.getLogger(__name__)

CLAIM_COUNT = 1000


def lease_role(stream: str) -> str:
    """The lease that elects a FIFO queue's one reader."""
    return f"fifo:{stream}"


async def claim_all_pending(redis: Redis, stream: str, group: str, consumer: str) -> int:
    """Move every pending entry of `group` to `consumer` (at once: the lease says nobody else
    reads); returns how many. A missing stream or group claims nothing."""
    claimed, cursor = 0, b"0-0"
    while True:
        try:
            # without JUSTID: redis-py's reply callback then keeps the cursor, and its cluster
            # client needs a str command name (a bytes one skipped the callback before)
            send = redis.execute_command
            reply: Any = await send(  # type: ignore[no-untyped-call]
                "XAUTOCLAIM", stream, group, consumer, 0, cursor, "COUNT", CLAIM_COUNT
            )
        except RedisError as exc:
            if "NOGROUP" in str(exc):
                return claimed
            raise
        cursor, entries = reply[0], reply[1]
        claimed += len(entries)
        if cursor in (b"0-0", "0-0"):
            return claimed


class FifoGate:
    """Runs one FIFO queue's processor loop only while this process holds the queue's lease."""

    def __init__(self, loop: ProcessorLoop, redis: Redis, ttl_ms: int, prefix: str) -> None:
        self.loop = loop
        self.redis = redis
        self.stream = loop.spec.inputs[0]
        self.lease = Lease(redis, lease_role(self.stream), ttl_ms=ttl_ms, prefix=prefix)
        self._stopping = False
        self._stopped = anyio.Event()

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self.loop.stop()

    async def run(self) -> None:
        """Hold the lease and run the loop; wait while another replica holds it; until stop()."""
        consumer = self.loop.reader.consumer.decode()
        while not self._stopping:
            try:
                acquired = await self.lease.acquire()
            except (RedisError, OSError) as exc:
                log.warning("FIFO lease of %s: %s", self.stream, exc)
                acquired = False
            if acquired:
                async with self.lease.hold():
                    claimed = await claim_all_pending(
                        self.redis, self.stream, self.loop.spec.group, consumer
                    )
                    if claimed:
                        log.info("FIFO %s: took over %d pending entries", self.stream, claimed)
                    await self.loop.run()
                if self._stopping:
                    return
            with anyio.move_on_after(self.lease.renew_ms / 1000):
                await self._stopped.wait()
