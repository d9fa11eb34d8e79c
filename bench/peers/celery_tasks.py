"""Celery for the `tasks` scenario (runs in .bench-venvs/celery): the no-op `noop(n) -> n` with
the redis broker and the redis result backend (one key per task), a worker of 8 threads
(`--pool threads`; prefork would fork on this 2-core machine), prefetch multiplier 100.
`--enqueue N` queues with apply_async and prints the seconds; `--work` runs the worker."""

from __future__ import annotations

import argparse
import os
import time

from celery import Celery  # type: ignore[import-not-found, unused-ignore]

URL = os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench_tasks", broker=URL, backend=URL)
app.conf.update(worker_prefetch_multiplier=100, task_ignore_result=False, result_expires=3600)


@app.task(name="noop")  # type: ignore[untyped-decorator, unused-ignore]
def noop(n: int) -> int:
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--enqueue", type=int, default=0)
    parser.add_argument("--work", action="store_true")
    args = parser.parse_args()
    if args.enqueue:
        started = time.perf_counter()
        for n in range(args.enqueue):
            noop.apply_async((n,))
        print(f"enqueue_seconds {time.perf_counter() - started:.6f}")
        return
    app.worker_main(
        ["worker", "--pool", "threads", "--concurrency", "8", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"]
    )  # fmt: skip


if __name__ == "__main__":
    main()
