"""FIFO queues: one task at a time across replicas, in enqueue order, retries in place; per key
with fifo_key. Three replicas, random failures, and a kill -9 of the queue's holder."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill import App, keys
from gristmill.errors import ConfigError
from gristmill.settings import Settings
from gristmill.tasks.fifo import lease_role
from tests.apps import fifo_tasks
from tests.helpers.procs import Proc, serve
from tests.typed_redis import raw

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer
    from gristmill.tasks.client import TaskHandle
    from gristmill.tasks.context import TaskContext

ENV = {"GRISTMILL_BLOCK_MS": "100", "GRISTMILL_CLAIM_IDLE": "2", "GRISTMILL_LEASE_TTL_MS": "1000"}
TASKS = 10_000
KEYED = 2_000
ACCOUNTS = [f"acct-{n}" for n in range(20)]


async def holder_pid(redis: Redis, stream: str) -> int | None:
    token = await raw(redis, "GET", keys.lease(lease_role(stream)))
    return int(token.decode().split(":")[2]) if token else None


async def finished_times(handles: list[TaskHandle], within: float) -> list[int]:
    with anyio.fail_after(within):
        return [int(await handle.result(timeout=within)) for handle in handles]


@pytest.mark.slow
@pytest.mark.fault
async def test_fifo_order_holds_over_three_replicas_failures_and_a_kill(
    server: EmbeddedServer, redis: Redis
) -> None:
    env = {**ENV, "GRISTMILL_REDIS_URL": server.url}
    settings = Settings(health_port=0)
    with ExitStack() as stack:
        replicas: list[Proc] = [
            stack.enter_context(serve("tests.apps.fifo_tasks:app", env=env)) for _ in range(3)
        ]
        async with fifo_tasks.app.connected(url=server.url, settings=settings):
            ordered = await fifo_tasks.step.enqueue_many({"n": n} for n in range(TASKS))
            keyed = await fifo_tasks.post.enqueue_many(
                {"account": ACCOUNTS[n % len(ACCOUNTS)], "n": n} for n in range(KEYED)
            )
            stream = fifo_tasks.step.spec.stream
            with anyio.fail_after(60):  # wait until the queue's holder is part-way through
                # entries-read is nil until the group's first delivery (a group created at 0)
                while (
                    (await redis.xinfo_groups(stream) or [{}])[0].get("entries-read") or 0
                ) < 2000:
                    await anyio.sleep(0.05)
            pid = await holder_pid(redis, stream)
            victim = next(p for p in replicas if p.pid == pid)
            victim.kill9()
            ended = await finished_times(ordered, within=240)
            keyed_ended = await finished_times(keyed, within=120)
        records = [await handle.record() for handle in ordered[:: TASKS // 100]]
    assert ended == sorted(ended), "completions left enqueue order"
    for account in ACCOUNTS:
        mine = [t for n, t in enumerate(keyed_ended) if ACCOUNTS[n % len(ACCOUNTS)] == account]
        assert mine == sorted(mine), f"{account}: completions left enqueue order"
    assert sorted(keyed_ended) != keyed_ended  # keys ran in parallel, not one global order
    retried = [r for r in records if r is not None and r.retries_used]
    assert retried, "no sampled task was retried: the failures did not happen"
    assert all("in place (FIFO)" in "".join(e.detail for e in r.events) for r in retried)


async def test_a_retry_keeps_its_place_in_one_process(server: EmbeddedServer, redis: Redis) -> None:
    app = App("inline")
    ran: list[tuple[int, int]] = []

    @app.task(queue="line", fifo=True, retry=fifo_tasks.FLAKY)
    async def item(ctx: TaskContext, n: int) -> None:
        ran.append((n, ctx.attempt))
        if n == 3 and ctx.attempt < 3:
            raise ValueError("not yet")

    async with app.running(url=server.url, settings=Settings(block_ms=50, health_port=0)):
        handles = await item.enqueue_many({"n": n} for n in range(8))
        await handles[-1].result(timeout=10)
        record = await handles[3].record()
    assert ran == [(0, 1), (1, 1), (2, 1), (3, 1), (3, 2), (3, 3), (4, 1), (5, 1), (6, 1), (7, 1)]
    assert record is not None
    assert (record.state, record.attempt, record.retries_used) == ("done", 3, 2)
    assert [e.state for e in record.events] == [
        "queued", "running", "error", "queued", "running", "error", "queued", "running", "done",
    ]  # fmt: skip
    assert json.loads(record.result) is None


def test_fifo_declarations_fail_clearly() -> None:
    app = App("bad")
    with pytest.raises(ConfigError, match="one task at a time; drop concurrency"):
        app.task(fifo=True, concurrency=4)(_noop)
    with pytest.raises(ConfigError, match="fifo_key='nope' must name a str, int or bytes"):
        app.task(fifo_key="nope")(_noop)
    app.task(queue="q")(_noop)
    with pytest.raises(ConfigError, match="queue 'q' is not FIFO from an earlier task"):

        @app.task(queue="q", fifo=True)
        async def other(word: str) -> None: ...


async def _noop(word: str) -> None: ...
