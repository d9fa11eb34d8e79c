"""The local cluster fixture works, and the schema registry works on it with a `{gm}:` prefix.

The registry's script touches three keys; with a hash-tagged prefix they share one slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from gristmill import keys
from gristmill.schemas.registry import SchemaRegistry
from tests.beyond.cluster import local_cluster
from tests.pipeline.messages import Order
from tests.typed_redis import raw

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.beyond.cluster import LocalCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


async def test_three_masters_three_replicas_serve_every_slot(cluster: LocalCluster) -> None:
    client = RedisCluster.from_url(cluster.url)
    try:
        listing = await raw_node(cluster, "CLUSTER", "NODES")
        roles = sorted(line.split()[2].split(",")[-1] for line in listing.splitlines())
        assert roles == ["master"] * 3 + ["slave"] * 3
        for n in range(50):  # keys spread over the slots land on their masters
            await client.set(f"k{n}", n)
        assert [await client.get(f"k{n}") for n in range(50)] == [b"%d" % n for n in range(50)]
    finally:
        await client.aclose()


async def raw_node(cluster: LocalCluster, *args: str) -> str:
    """One command sent to the first node, answered as text."""
    node = Redis.from_url(cluster.url, decode_responses=True)
    try:
        return str(await raw(node, *args))
    finally:
        await node.aclose()


async def test_the_registry_works_on_a_cluster_with_a_tagged_prefix(
    cluster: LocalCluster,
) -> None:
    prefix = "{gm}:"
    slots = {keys.key_slot(k(prefix).encode()) for k in (keys.schemas, keys.subjects)}
    assert len(slots) == 1
    client = RedisCluster.from_url(cluster.url)
    try:
        registry = SchemaRegistry(client, prefix)  # type: ignore[arg-type]  # same commands
        first = await registry.register(Order.DESCRIPTOR)
        again = await registry.register(Order.DESCRIPTOR)
        assert first == again
        assert first.version == 1
    finally:
        await client.aclose()
