"""`arq`: no-op jobs through arq's worker with its defaults (runs in bench-venvs/arq).

`--prefill N` enqueues N jobs, each carrying one ~100-byte Order payload as its argument,
then exits; without it the script runs a worker until SIGTERM. arq keeps each job in its
queue (the sorted set `arq:queue`) until the job is finished, so the harness counts finished
jobs as N - ZCARD(arq:queue).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import urlparse

from arq import create_pool  # type: ignore[import-not-found, unused-ignore]
from arq.connections import RedisSettings  # type: ignore[import-not-found, unused-ignore]
from arq.worker import Worker  # type: ignore[import-not-found, unused-ignore]

from bench.payload import order_payload
from bench.peers.common import run_until_terminated

_ENQUEUE_CONCURRENCY = 200  # enqueue_job is one WATCH/MULTI per job: overlap them
# arq's default poll_delay (0.5 s) reads at most 100 jobs per poll: a 200 jobs/s cap that
# measures the poll interval, not arq. Poll every 5 ms; max_jobs stays arq's default (10),
# which measured faster here than 500 (~2,500 vs ~1,800 jobs/s).
MAX_JOBS = 10
POLL_DELAY_S = 0.005


async def noop(ctx: dict[str, Any], payload: bytes) -> None:
    """The job: nothing, so what is measured is arq's own cost per job."""


def redis_settings(url: str) -> Any:
    """arq's connection settings for `url` (shared with arq_tasks.py)."""
    parts = urlparse(url)
    return RedisSettings(host=parts.hostname or "127.0.0.1", port=parts.port or 6379)


async def prefill(url: str, count: int) -> None:
    pool = await create_pool(redis_settings(url))
    try:
        for start in range(0, count, _ENQUEUE_CONCURRENCY):
            numbers = range(start, min(start + _ENQUEUE_CONCURRENCY, count))
            await asyncio.gather(*(pool.enqueue_job("noop", order_payload(n)) for n in numbers))
    finally:
        await pool.aclose()


async def work(url: str, max_jobs: int, poll_delay: float) -> None:
    worker = Worker(
        functions=[noop],
        redis_settings=redis_settings(url),
        handle_signals=False,
        max_jobs=max_jobs,
        poll_delay=poll_delay,
    )
    try:
        await worker.main()
    finally:
        await worker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument("--max-jobs", type=int, default=MAX_JOBS)
    parser.add_argument("--poll-delay", type=float, default=POLL_DELAY_S)
    args = parser.parse_args()
    if args.prefill:
        asyncio.run(prefill(args.url, args.prefill))
    else:
        run_until_terminated(work(args.url, args.max_jobs, args.poll_delay))


if __name__ == "__main__":
    main()
