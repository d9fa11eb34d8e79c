"""gristmill's enqueuer for the `tasks` scenario: `--enqueue N [--untracked]` queues N no-op
tasks in calls of 1,000 (enqueue_many) and prints the seconds it took; the workers are
`runtime serve bench.apps.tasks:app --only noop|noop_untracked`."""

from __future__ import annotations

import argparse
import time

import anyio

from bench.apps.tasks import app, noop, noop_untracked
from gristmill.settings import Settings

CALL = 1000  # tasks per enqueue_many call: one script call each


async def enqueue(url: str, count: int, untracked: bool) -> float:
    task = noop_untracked if untracked else noop
    settings = Settings(health_port=0)
    async with app.connected(url=url, settings=settings):
        started = time.perf_counter()
        for start in range(0, count, CALL):
            await task.enqueue_many({"n": n} for n in range(start, min(start + CALL, count)))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--enqueue", type=int, required=True)
    parser.add_argument("--untracked", action="store_true")
    args = parser.parse_args()
    seconds = anyio.run(enqueue, args.url, args.enqueue, args.untracked)
    print(f"enqueue_seconds {seconds:.6f}")


if __name__ == "__main__":
    main()
