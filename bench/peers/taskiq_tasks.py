"""taskiq with taskiq-redis for the `tasks` scenario (runs in .bench-venvs/taskiq): the no-op
`noop(n) -> n` on a ListQueueBroker, its result kept in RedisAsyncResultBackend (one key per
task), enqueued 200 at a time; a worker process with `--max-async-tasks 100`.
`--enqueue N` queues and prints the seconds; `--work` runs the worker until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from taskiq_redis import (  # type: ignore[import-not-found, unused-ignore]
    ListQueueBroker,
    RedisAsyncResultBackend,
)

URL = os.environ.get("BENCH_TASKIQ_URL", "redis://127.0.0.1:6379")
CONCURRENT = 200

# redis-py 8 reads with a 5 s socket timeout by default; taskiq-redis 1.2.4 blocks in BRPOP
# without a timeout of its own, so its worker died every 5 s idle: no socket timeout here
broker = ListQueueBroker(URL, socket_timeout=None).with_result_backend(
    RedisAsyncResultBackend(URL, result_ex_time=3600)
)


@broker.task(task_name="noop")  # type: ignore[untyped-decorator, unused-ignore]
async def noop(n: int) -> int:
    return n


async def enqueue(count: int) -> float:
    await broker.startup()
    try:
        started = time.perf_counter()
        for start in range(0, count, CONCURRENT):
            numbers = range(start, min(start + CONCURRENT, count))
            await asyncio.gather(*(noop.kiq(n) for n in numbers))
        return time.perf_counter() - started
    finally:
        await broker.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--enqueue", type=int, default=0)
    parser.add_argument("--work", action="store_true")
    args = parser.parse_args()
    if args.enqueue:
        print(f"enqueue_seconds {asyncio.run(enqueue(args.enqueue)):.6f}")
        return
    from taskiq.cli.worker.args import WorkerArgs  # type: ignore[import-not-found, unused-ignore]
    from taskiq.cli.worker.run import run_worker  # type: ignore[import-not-found, unused-ignore]

    sys.exit(run_worker(WorkerArgs.from_cli(
        ["bench.peers.taskiq_tasks:broker", "--workers", "1", "--max-async-tasks", "100"]
    )))  # fmt: skip


if __name__ == "__main__":
    main()
