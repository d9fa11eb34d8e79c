"""`runtime docs`: a valid AsyncAPI 3.0 document and a Graphviz drawing of the pipeline."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import jsonschema
from redis.asyncio import Redis

from gristmill.cli import runtime
from gristmill.producer import Publisher
from services.schemas import Invoice, Order, Receipt

if TYPE_CHECKING:
    from pathlib import Path

    import redis as sync_redis
    from click.testing import CliRunner

    from gristmill.embedded import EmbeddedServer

APPS = ("services.orders:app", "services.payments:app")


async def _one_of_each(url: str) -> None:
    client = Redis.from_url(url)
    try:
        publisher = Publisher(client)
        for stream, message in (
            ("orders.placed", Order(id="o-1")), ("orders.valid", Order(id="o-1")),
            ("invoices", Invoice(order_id="o-1")), ("receipts", Receipt(order_id="o-1")),
        ):  # fmt: skip
            await publisher.publish(stream, message)
    finally:
        await client.aclose()


def test_docs_writes_a_valid_asyncapi_document_and_the_graph(
    server: EmbeddedServer, db: sync_redis.Redis, cli: CliRunner, tmp_path: Path,
    dot_binary: str, asyncapi_schema: dict[str, Any],
) -> None:  # fmt: skip
    asyncio.run(_one_of_each(server.url))
    result = cli.invoke(runtime, ["docs", *APPS, "--out", str(tmp_path), "--sample"])
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "asyncapi.json").read_text())
    jsonschema.validate(spec, asyncapi_schema)
    addresses = {channel["address"] for channel in spec["channels"].values()}
    assert addresses == {"orders.placed", "orders.valid", "invoices", "receipts"}
    placed = spec["channels"]["orders_placed"]["messages"]
    (ref,) = placed.values()
    message = spec["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
    assert message["name"] == Order.DESCRIPTOR.full_name
    payload = spec["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1]]
    assert payload["properties"]["items"]["type"] == "array"  # repeated LineItem
    actions = sorted((op["action"], op["channel"]["$ref"]) for op in spec["operations"].values())
    assert ("receive", "#/channels/invoices") in actions
    assert ("send", "#/channels/receipts") in actions
    assert len(actions) == 6  # three processors, one input and one output each
    svg = (tmp_path / "pipeline.svg").read_text()
    assert "<svg" in svg
    for name in ("validate", "bill", "charge", "orders.placed", "receipts"):
        assert name in svg
    assert (tmp_path / "pipeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    edges = {
        line.strip().removesuffix(";")
        for line in (tmp_path / "pipeline.dot").read_text().splitlines()
        if "->" in line
    }
    assert edges == {
        '"stream orders.placed" -> "processor orders.validate"',
        '"processor orders.validate" -> "stream orders.valid"',
        '"stream orders.valid" -> "processor orders.bill"',
        '"processor orders.bill" -> "stream invoices"',
        '"stream invoices" -> "processor payments.charge"',
        '"processor payments.charge" -> "stream receipts"',
    }
    assert "unrecognized" not in result.output  # dot took no node name for a port


def test_docs_without_a_server_still_draws_the_graph(
    cli: CliRunner, tmp_path: Path, dot_binary: str, asyncapi_schema: dict[str, Any]
) -> None:
    result = cli.invoke(runtime, ["docs", *APPS, "--out", str(tmp_path), "--no-sample"])
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "asyncapi.json").read_text())
    jsonschema.validate(spec, asyncapi_schema)
    assert "validate" in (tmp_path / "pipeline.dot").read_text()
