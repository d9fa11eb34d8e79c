"""SAQ for the `tasks` scenario (runs in .bench-venvs/saq): the no-op `noop(n) -> n`, its
result kept by SAQ on the job, enqueued 200 at a time; a worker with concurrency 50.
`--enqueue N` queues and prints the seconds; else a worker until SIGTERM. Finished jobs are
counted by the harness from SAQ's queue lists."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from saq import Queue, Worker  # type: ignore[import-not-found, unused-ignore]

from bench.peers.common import task_peer_main

CONCURRENT = 200
CONCURRENCY = 50


async def noop(ctx: dict[str, Any], *, n: int) -> int:
    return n


async def enqueue(url: str, count: int) -> float:
    queue = Queue.from_url(url)
    try:
        started = time.perf_counter()
        for start in range(0, count, CONCURRENT):
            numbers = range(start, min(start + CONCURRENT, count))
            await asyncio.gather(*(queue.enqueue("noop", n=n) for n in numbers))
        return time.perf_counter() - started
    finally:
        await queue.disconnect()


async def work(url: str) -> None:
    queue = Queue.from_url(url)
    worker = Worker(queue, functions=[noop], concurrency=CONCURRENCY)
    try:
        await worker.start()
    finally:
        await worker.stop()


def main() -> None:
    task_peer_main(__doc__ or "", enqueue, work)


if __name__ == "__main__":
    main()
