"""`runtime status --json` against a state built by hand: lag, pending, lanes, delayed, leases."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from gristmill import keys
from gristmill.cli import runtime
from gristmill.producer import Publisher
from tests.pipeline.messages import Order

if TYPE_CHECKING:
    import redis as sync_redis
    from click.testing import CliRunner

    from gristmill.embedded import EmbeddedServer

STREAM = "orders.in"
GROUP = "billing"


async def _known_state(url: str) -> None:
    """5 entries; the group read 2 (pending) and not 3 (lag); 1 dead letter; 3 delayed."""
    client = Redis.from_url(url)
    try:
        publisher = Publisher(client)
        for n in range(5):
            await publisher.publish(STREAM, Order(id=f"o-{n}", sku="tea", quantity=n))
        await client.xgroup_create(STREAM, GROUP, id="0")
        await client.xreadgroup(GROUP, "worker-1", {STREAM: ">"}, count=2)
        await client.xadd(keys.dead_lane(STREAM, GROUP), {"reason": "bad_line_item"})
        for n in range(3):
            await publisher.schedule(STREAM, Order(id=f"later-{n}"), delay=3600)
        await client.set(keys.lease("sweeper"), "host-a:4242:7", px=60_000)
    finally:
        await client.aclose()


def test_status_json_reports_a_known_state(
    server: EmbeddedServer, db: sync_redis.Redis, cli: CliRunner
) -> None:
    asyncio.run(_known_state(server.url))
    result = cli.invoke(runtime, ["status", "--json", "--interval", "0.1"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    (stream,) = [s for s in document["streams"] if s["stream"] == STREAM]
    assert stream["length"] == 5
    (group,) = stream["groups"]
    assert group["group"] == GROUP
    assert (group["lag"], group["pending"], group["dead_letters"]) == (3, 2, 1)
    assert group["oldest_pending_age_ms"] >= 0
    assert group["rate_per_s"] == 0.0  # nothing read between the two snapshots
    (consumer,) = group["consumers"]
    assert (consumer["name"], consumer["pending"]) == ("worker-1", 2)
    (delayed,) = document["delayed"]
    assert (delayed["stream"], delayed["entries"], delayed["approximate"]) == (STREAM, 3, False)
    assert delayed["next_due_ms"] > document["taken_ms"] + 3_500_000
    sweeper = next(lease for lease in document["leases"] if lease["role"] == "sweeper")
    assert sweeper["holder"] == "host-a:4242:7"
    assert 0 < sweeper["ttl_ms"] <= 60_000
    assert all(not s["stream"].startswith("{") for s in document["streams"])  # no lanes


def test_status_prints_tables_for_people(
    server: EmbeddedServer, db: sync_redis.Redis, cli: CliRunner
) -> None:
    asyncio.run(_known_state(server.url))
    result = cli.invoke(runtime, ["status", "--interval", "0.1"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if STREAM in line and GROUP in line)
    assert "worker-1" in row
    assert "host-a:4242:7" in result.output
