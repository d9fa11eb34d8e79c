"""arq for the `tasks` scenario (runs in .bench-venvs/arq): the no-op `noop(n) -> n`, its
result kept by arq (keep_result, default one hour), enqueued 200 at a time (enqueue_job is one
WATCH/MULTI per job). `--enqueue N` queues and prints the seconds; else a worker until SIGTERM.
Finished jobs: N - ZCARD(arq:queue)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq import create_pool  # type: ignore[import-not-found, unused-ignore]
from arq.worker import Worker  # type: ignore[import-not-found, unused-ignore]

from bench.peers.arq_peer import redis_settings
from bench.peers.common import task_peer_main

CONCURRENT = 200
MAX_JOBS = 10  # arq's default: faster here than 500 (bench/peers/arq_peer.py)
POLL_DELAY_S = 0.005


async def noop(ctx: dict[str, Any], n: int) -> int:
    return n


async def enqueue(url: str, count: int) -> float:
    pool = await create_pool(redis_settings(url))
    try:
        started = time.perf_counter()
        for start in range(0, count, CONCURRENT):
            numbers = range(start, min(start + CONCURRENT, count))
            await asyncio.gather(*(pool.enqueue_job("noop", n) for n in numbers))
        return time.perf_counter() - started
    finally:
        await pool.aclose()


async def work(url: str) -> None:
    worker = Worker(
        functions=[noop], redis_settings=redis_settings(url), handle_signals=False,
        max_jobs=MAX_JOBS, poll_delay=POLL_DELAY_S,
    )  # fmt: skip
    try:
        await worker.main()
    finally:
        await worker.close()


def main() -> None:
    task_peer_main(__doc__ or "", enqueue, work)


if __name__ == "__main__":
    main()
