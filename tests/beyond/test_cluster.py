"""The local cluster fixture works, and the schema registry works on it with a `{gm}:` prefix.

The registry's script touches three keys; with a hash-tagged prefix they share one slot.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from gristmill import keys
from gristmill.connect import redis_client
from gristmill.schemas.registry import SchemaRegistry
from gristmill.settings import Settings
from gristmill.timing.leader import Lease
from tests.helpers.procs import serve
from tests.pipeline.messages import Order
from tests.typed_redis import raw

if TYPE_CHECKING:
    from tests.beyond.cluster import LocalCluster

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


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


DEAD = ("orders.placed", "orders.validate")  # the lane of validate's dead letters


def _runtime(
    cluster: LocalCluster, *args: str, prefix: str = "{gm}:"
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRISTMILL_")}
    env = {**clean, "GRISTMILL_REDIS_URL": "redis+cluster://" + cluster.url.split("://")[1],
           "GRISTMILL_KEY_PREFIX": prefix, "COLUMNS": "200"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "gristmill", *args],
        check=False, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_the_cli_registers_and_lists_schemas_on_a_cluster(cluster: LocalCluster) -> None:
    registered = _runtime(cluster, "schemas", "register", "schemas/orders.proto")
    assert registered.returncode == 0, registered.stderr
    listed = _runtime(cluster, "schemas", "list")
    assert listed.returncode == 0, listed.stderr
    assert "example.orders.Receipt" in listed.stdout


def test_serve_on_a_cluster_refuses_a_prefix_without_a_hash_tag_in_two_lines(
    cluster: LocalCluster,
) -> None:
    done = _runtime(cluster, "serve", "services.orders:app", prefix="gm:")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith("error: GRISTMILL_KEY_PREFIX 'gm:' has no hash tag"), lines
    assert lines[1].startswith("fix: set GRISTMILL_KEY_PREFIX to a prefix with a hash tag")
    assert "Traceback" not in done.stderr


async def test_a_lease_is_held_renewed_and_released_on_a_cluster(cluster: LocalCluster) -> None:
    client = redis_client(
        "redis+cluster://" + cluster.url.split("://")[1], Settings(key_prefix="{gm}:")
    )
    try:
        assert isinstance(client, RedisCluster)  # what the sweeper checks to fence by epoch
        lease = Lease(client, "sweeper", ttl_ms=2000, prefix="{gm}:")
        rival = Lease(client, "sweeper", ttl_ms=2000, prefix="{gm}:")
        assert await lease.acquire()
        assert not await rival.acquire()
        assert await lease.renew()
        assert await lease.release()
        assert await rival.acquire()
    finally:
        await client.aclose()


async def test_the_cli_publishes_tails_and_replays_dead_letters_on_a_cluster(
    cluster: LocalCluster,
) -> None:
    """`tail` and `dlq` read entries unparsed (flat fields), which redis-py's cluster client
    would not route: on a cluster they go to the key's master."""
    client = RedisCluster.from_url(cluster.url, socket_timeout=5)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    await client.aclose()
    env = {"GRISTMILL_REDIS_URL": "redis+cluster://" + cluster.url.split("://")[1],
           "GRISTMILL_KEY_PREFIX": "{gm}:", "GRISTMILL_HEALTH_PORT": "0"}  # fmt: skip
    with serve("services.orders:app", env=env) as worker:
        await worker.wait_for_line_async("serving", within=60)
        order = '{"id": "o-7", "items": [{"sku": "tea", "quantity": 2, "unit_price_cents": 450}]}'
        for body in (order, '{"id": "o-8"}'):  # o-8 has no items: dead-lettered
            sent = _runtime(cluster, "publish", "orders.placed", "--type", "example.orders.Order",
                            "--json", body)  # fmt: skip
            assert sent.returncode == 0, sent.stderr
        with anyio.fail_after(30):
            while "empty_order" not in (shown := _runtime(cluster, "dlq", "show", *DEAD)).stdout:
                await anyio.sleep(0.2)
        tailed = _runtime(cluster, "tail", "orders.placed", "--last", "2", "--no-follow")
        replayed = _runtime(cluster, "dlq", "replay", *DEAD)
        assert await worker.terminate_async() == 0
    assert tailed.returncode == 0, tailed.stderr
    lines = tailed.stdout.splitlines()
    assert len(lines) == 2, tailed.stdout
    assert '"o-7"' in lines[0]  # decoded through the registry, oldest first
    assert '"o-8"' in lines[1]
    assert "empty_order" in shown.stdout
    assert replayed.returncode == 0, replayed.stderr
    assert "moved 1 entries" in replayed.stdout
