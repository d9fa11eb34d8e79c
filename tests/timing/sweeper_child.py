"""A sweeper replica in its own process, for the failover tests.

    python tests/timing/sweeper_child.py URL COUNTS_PATH TTL_MS RENEW_MS

Writes its counts as JSON to COUNTS_PATH every 10 ms (replaced atomically), with the wall
time at which it first became leader, so the test can time a failover across processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import anyio
from redis.asyncio import Redis

from gristmill.timing.delayed import DelayedStore
from gristmill.timing.leader import Lease
from gristmill.timing.sweeper import Sweeper


async def main(url: str, counts_path: Path, ttl_ms: int, renew_ms: int) -> None:
    redis = Redis.from_url(url, socket_timeout=5)
    lease = Lease(redis, "sweeper", ttl_ms=ttl_ms, renew_ms=renew_ms)
    sweeper = Sweeper(redis, DelayedStore(redis, bucket_ms=10), lease)
    first_led_at: float | None = None
    scratch = counts_path.with_suffix(".tmp")
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweeper.run)
        while True:
            if first_led_at is None and sweeper.counts.terms:
                first_led_at = time.time()
            record = dataclasses.asdict(sweeper.counts)
            record.update(pid=os.getpid(), first_led_at=first_led_at, held=lease.held)
            scratch.write_text(json.dumps(record))
            scratch.replace(counts_path)
            await anyio.sleep(0.01)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
