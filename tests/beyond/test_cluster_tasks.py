"""Schedules and tasks on a real 3 + 3 cluster: the scheduler's leader fires an every-second
schedule into its task queue, and the queue's worker runs each fire once."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from redis.asyncio.cluster import RedisCluster

from gristmill import keys
from gristmill.settings import Settings
from gristmill.tasks import record
from tests.apps import fifo_tasks
from tests.helpers.procs import serve

if TYPE_CHECKING:
    from tests.beyond.cluster import LocalCluster

pytestmark = pytest.mark.slow

PREFIX = "{gm}:"


async def test_a_schedule_fires_and_its_tasks_run_on_a_cluster(cluster: LocalCluster) -> None:
    client = RedisCluster.from_url(cluster.url, socket_timeout=5, socket_connect_timeout=2)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    queue = keys.task_queue("ticks")  # queue streams keep the default prefix: one slot each
    env = {
        "GRISTMILL_REDIS_URL": "redis+cluster://" + cluster.url.split("://", 1)[1],
        "GRISTMILL_KEY_PREFIX": PREFIX,
        "GRISTMILL_BLOCK_MS": "200",
        "GRISTMILL_HEALTH_PORT": "0",
    }
    try:
        with ExitStack() as stack:
            worker = stack.enter_context(serve("tests.apps.ticking:app", env=env))
            with anyio.fail_after(60):
                while await client.exists(queue) == 0 or await client.xlen(queue) < 4:
                    await anyio.sleep(0.2)
            await anyio.sleep(1.5)  # the last fire is handled
            assert await worker.terminate_async() == 0, worker.output
        entries: Any = await client.xrange(queue)
        fired = [fields[b"task"].decode().rpartition("/")[2] for _, fields in entries]  # name/id
        states = []
        for task_id in fired:
            fields: Any = await client.hgetall(keys.task_record(queue, task_id))
            parsed = record.parse(fields)
            states.append(None if parsed is None else parsed.state)
    finally:
        await client.aclose()
    assert len(fired) == len(set(fired)) >= 4  # one entry per fire, none twice
    assert states[:-1] == ["done"] * (len(states) - 1)  # the last may be in hand at the stop


async def test_a_fifo_queue_keeps_its_order_on_a_cluster(cluster: LocalCluster) -> None:
    """Two replicas of a FIFO queue (one holds its lease and runs it), 5% of runs failing and
    retried in place: the tasks end in the order they were enqueued."""
    client = RedisCluster.from_url(cluster.url, socket_timeout=5, socket_connect_timeout=2)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    await client.aclose()
    url = "redis+cluster://" + cluster.url.split("://", 1)[1]
    env = {
        "GRISTMILL_REDIS_URL": url,
        "GRISTMILL_KEY_PREFIX": PREFIX,
        "GRISTMILL_BLOCK_MS": "100",
        "GRISTMILL_HEALTH_PORT": "0",
    }
    settings = Settings(health_port=0, key_prefix=PREFIX)
    with ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(serve("tests.apps.fifo_tasks:app", env=env))
        async with fifo_tasks.app.connected(url=url, settings=settings):
            handles = await fifo_tasks.step.enqueue_many({"n": n} for n in range(2000))
            with anyio.fail_after(120):
                ended = [int(await handle.result(timeout=120)) for handle in handles]
    assert ended == sorted(ended), "completions left enqueue order"
