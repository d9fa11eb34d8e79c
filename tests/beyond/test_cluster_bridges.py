"""Pub/sub bridges on a real 3 + 3 cluster: the leader's writes go to the stream's master and
are fenced by the lease's epoch in the stream's slot (the lease key lives in another slot)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from redis.asyncio.cluster import RedisCluster

from gristmill import keys
from tests.bridges.feed import publish_until
from tests.helpers.procs import serve

if TYPE_CHECKING:
    from tests.beyond.cluster import LocalCluster

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("redundant", ["0", "1"])
async def test_a_bridge_writes_its_stream_on_a_cluster(
    cluster: LocalCluster, redundant: str
) -> None:
    client = RedisCluster.from_url(cluster.url, socket_timeout=5, socket_connect_timeout=2)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    env = {
        "GRISTMILL_REDIS_URL": "redis+cluster://" + cluster.url.split("://", 1)[1],
        "GRISTMILL_KEY_PREFIX": "{gm}:",
        "GRISTMILL_HEALTH_PORT": "0",
        "BRIDGE_REDUNDANT": redundant,
    }
    try:
        with serve("tests.bridges.bridge_app:app", env=env) as worker:
            await worker.wait_for_line_async("bridge in:", within=60)
            await publish_until(client, 200)  # type: ignore[arg-type]  # the commands it sends
            assert await worker.terminate_async() == 0, worker.output
        fence = await client.get(keys.bridge_fence("ingest"))
    finally:
        await client.aclose()
    if redundant == "0":
        assert fence is not None  # the leader's epoch, written in the stream's slot
        assert int(fence) >= 1
    else:
        assert fence is None  # no leader: the dedup window is the guard
