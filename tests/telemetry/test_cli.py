"""`runtime publish`, `runtime schemas history` and `runtime health` against real servers."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, cast

from redis.asyncio import Redis

from gristmill.cli import runtime
from gristmill.envelope import open_fields
from gristmill.health import Health, HealthServer
from gristmill.schemas.build import SchemaBuilder
from gristmill.schemas.registry import SchemaRegistry
from tests.pipeline.messages import Order
from tests.telemetry.probes import free_port

if TYPE_CHECKING:
    import redis as sync_redis
    from click.testing import CliRunner

    from gristmill.embedded import EmbeddedServer
    from tests.typed_redis import Entries


async def _register(url: str) -> None:
    client = Redis.from_url(url)
    try:
        await SchemaRegistry(client).register(Order.DESCRIPTOR)
    finally:
        await client.aclose()


def test_publish_encodes_json_as_the_registered_type(
    server: EmbeddedServer, db: sync_redis.Redis, cli: CliRunner
) -> None:
    asyncio.run(_register(server.url))
    document = json.dumps({"id": "o-1", "sku": "tea", "quantity": 3})
    inline = cli.invoke(
        runtime, ["publish", "orders.in", "--type", "tests.Order", "--json", document]
    )
    assert inline.exit_code == 0, inline.output
    piped = cli.invoke(runtime, ["publish", "orders.in", "--type", "tests.Order"], input=document)
    assert piped.exit_code == 0, piped.output
    entries = cast("Entries", db.xrange("orders.in"))
    assert len(entries) == 2
    for _, fields in entries:
        flat = [item for pair in fields.items() for item in pair]
        envelope = open_fields(flat, 1 << 20)
        order = Order.FromString(envelope.payload)
        assert (order.id, order.sku, order.quantity) == ("o-1", "tea", 3)


def test_publish_refuses_json_of_another_shape_and_an_unknown_type(
    server: EmbeddedServer, db: sync_redis.Redis, cli: CliRunner
) -> None:
    asyncio.run(_register(server.url))
    wrong = cli.invoke(runtime, ["publish", "s", "--type", "tests.Order", "--json", '{"nope": 1}'])
    assert wrong.exit_code == 2
    assert "is not a tests.Order" in wrong.output
    unknown = cli.invoke(runtime, ["publish", "s", "--type", "no.Such", "--json", "{}"])
    assert unknown.exit_code == 2
    assert "error:" in unknown.output
    assert db.exists("s") == 0


def test_schemas_history_lists_versions_with_ids_and_mode(
    server: EmbeddedServer, db: sync_redis.Redis, cli: CliRunner
) -> None:
    async def two_versions() -> None:
        client = Redis.from_url(server.url)
        try:
            registry = SchemaRegistry(client)
            for fields in (("id",), ("id", "note")):
                builder = SchemaBuilder("hist.proto", package="hist")
                message = builder.message("Event")
                for number, name in enumerate(fields, start=1):
                    message.field(name, number, "string")
                built = builder.build()
                await registry.register(built.descriptor("hist.Event"))
        finally:
            await client.aclose()

    asyncio.run(two_versions())
    result = cli.invoke(runtime, ["schemas", "history", "hist.Event", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["mode"] == "BACKWARD"
    assert [v["version"] for v in found["versions"]] == [1, 2]
    assert len({v["schema_id"] for v in found["versions"]}) == 2
    assert all(v["registered_at_ms"] > 0 for v in found["versions"])
    table = cli.invoke(runtime, ["schemas", "history", "hist.Event"])
    assert table.exit_code == 0
    assert found["versions"][1]["schema_id"] in table.output
    missing = cli.invoke(runtime, ["schemas", "history", "no.Such"])
    assert missing.exit_code == 2


def test_runtime_health_exits_by_readiness_and_liveness(cli: CliRunner) -> None:
    health = Health(stale_after_s=60.0)
    server = HealthServer(health, None, "127.0.0.1", free_port())
    server.start()
    try:
        port = str(server.port)
        down = cli.invoke(runtime, ["health", "--port", port])
        assert down.exit_code == 1
        assert "not ready: no server connection" in down.output
        assert cli.invoke(runtime, ["health", "--port", port, "--live"]).exit_code == 0
        health.connected = True
        ready = cli.invoke(runtime, ["health", "--port", port])
        assert (ready.exit_code, ready.output.strip()) == (0, "ready")
    finally:
        server.close()
    gone = cli.invoke(runtime, ["health", "--port", port])
    assert gone.exit_code == 1
    assert "no answer" in gone.output
