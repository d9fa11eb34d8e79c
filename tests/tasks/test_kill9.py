"""kill -9 of a task worker mid-batch: every task ends done once; the record shows each rerun."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill.settings import Settings
from gristmill.tasks import inspect
from tests.apps.slow_tasks import app, double
from tests.helpers.procs import serve

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

pytestmark = [pytest.mark.slow, pytest.mark.fault]

WORKER_ENV = {"GRISTMILL_CLAIM_IDLE": "1", "GRISTMILL_BLOCK_MS": "100"}
TASKS = 400


async def done_count(redis: Redis) -> int:
    found = await inspect.listing(redis, filters={"state": "done"}, limit=TASKS)
    return len(found)


async def test_kill_9_of_a_task_worker_loses_nothing(server: EmbeddedServer, redis: Redis) -> None:
    async with app.connected(url=server.url, settings=Settings(health_port=0)):
        handles = await double.enqueue_many({"n": n} for n in range(TASKS))
    env = {**WORKER_ENV, "GRISTMILL_REDIS_URL": server.url}
    with ExitStack() as stack:
        first = stack.enter_context(serve("tests.apps.slow_tasks:app", env=env))
        with anyio.fail_after(60):
            while await done_count(redis) < 100:
                await anyio.sleep(0.05)
        first.kill9()
        stranded = TASKS - await done_count(redis)
        assert stranded > 0  # the kill came mid-queue
        stack.enter_context(serve("tests.apps.slow_tasks:app", env=env))
        with anyio.fail_after(60):
            while await done_count(redis) < TASKS:
                await anyio.sleep(0.1)
    records = [await handle.record() for handle in handles]
    assert all(record is not None for record in records)
    results = [record.result if record else "" for record in records]
    assert results == [str(2 * n) for n in range(TASKS)]  # none lost, each result its own
    runs = [sum(e.state == "running" for e in r.events) for r in records if r is not None]
    finishes = [sum(e.state == "done" for e in r.events) for r in records if r is not None]
    assert finishes == [1] * TASKS  # done once each: the commit that acks writes it
    reruns = sum(runs) - TASKS
    assert 0 <= reruns <= 50  # at most the batch in hand when the worker died
    rerun_attempts = [r.attempt for r in records if r is not None and r.attempt > 1]
    assert len(rerun_attempts) == reruns  # a redelivered run counts as a new attempt
