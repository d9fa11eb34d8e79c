"""FIFO queues for the ordering tests: each run fails now and then, and returns when it ended."""

from __future__ import annotations

import random
import time

from gristmill import App, RetryPolicy

app = App("fifo_tasks")
FLAKY = RetryPolicy(max_attempts=20, initial_delay=0.002, max_delay=0.01, jitter=0.0)
FAIL_RATE = 0.05


@app.task(queue="ordered", fifo=True, retry=FLAKY)
async def step(n: int) -> int:
    if random.random() < FAIL_RATE:
        raise RuntimeError(f"step {n} failed this time")
    return time.time_ns()


@app.task(queue="by_account", fifo_key="account", partitions=4, retry=FLAKY)
async def post(account: str, n: int) -> int:
    if random.random() < FAIL_RATE:
        raise RuntimeError(f"post {account}/{n} failed this time")
    return time.time_ns()
