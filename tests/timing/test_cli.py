"""`runtime delayed stats | list | move-now` through click's runner against the real server
(synchronous tests: the command runs its own event loop)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import redis as sync_redis
from click.testing import CliRunner, Result
from google.protobuf.struct_pb2 import Struct, Value

from gristmill import keys
from gristmill.cli import runtime
from gristmill.producer import Publisher
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry
from gristmill.timing.delayed import DelayedStore

if TYPE_CHECKING:
    from gristmill.embedded import EmbeddedServer

T0 = 4_102_444_800_000  # 2100-01-01T00:00:00Z: never due during a test


def schedule(url: str, stream: str, count: int, *, step_ms: int = 400) -> None:
    async def main() -> None:
        client = sync_redis.asyncio.Redis.from_url(url)
        store = DelayedStore(client)
        await store.schedule_many(
            (stream, [b"schema_id", b"\xff" * 16, b"payload", b"%d" % n], T0 + step_ms * n)
            for n in range(count)
        )
        await client.aclose()

    anyio.run(main)


def run(cli: CliRunner, *args: str, stdin: str | None = None) -> Result:
    return cli.invoke(runtime, ["delayed", *args], input=stdin, catch_exceptions=False)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_stats_counts_every_registered_store(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    schedule(server.url, "orders", 5)
    schedule(server.url, "payments", 2)
    db.set(keys.lease("sweeper"), "host:1:abc")
    report = as_json(run(cli, "stats", "--json"))
    assert report["sweeper_leader"] == "host:1:abc"
    by_stream = {s["stream"]: s for s in report["stores"]}
    assert by_stream["orders"]["entries"] == 5
    assert by_stream["orders"]["buckets"] == 3  # due T0 + 0..1600 ms: released at +0, +1, +2 s
    assert by_stream["orders"]["earliest_release_ms"] == T0
    assert by_stream["payments"]["entries"] == 2


def test_stats_hides_empty_stores_unless_asked(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    schedule(server.url, "orders", 2)
    schedule(server.url, "retried", 1)
    assert "moved 1 entries" in run(cli, "move-now", "retried", "--yes").stdout  # now empty
    shown = [s["stream"] for s in as_json(run(cli, "stats", "--json"))["stores"]]
    assert shown == ["orders"]
    every = [s["stream"] for s in as_json(run(cli, "stats", "--all", "--json"))["stores"]]
    assert every == ["orders", "retried"]
    named = as_json(run(cli, "stats", "retried", "--json"))["stores"]
    assert [(s["stream"], s["entries"]) for s in named] == [("retried", 0)]
    run(cli, "move-now", "orders", "--yes")
    assert "nothing waits in any delayed store (--all" in run(cli, "stats").stdout


def test_stats_table_names_the_streams(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    schedule(server.url, "orders", 3)
    result = run(cli, "stats")
    assert result.exit_code == 0
    assert "orders" in result.stdout
    assert "2100-01-01T00:00:00.000+00:00" in result.stdout
    assert "none (no sweeper running)" in result.stdout


def test_list_shows_the_earliest_entries_first(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    schedule(server.url, "orders", 10)
    entries = as_json(run(cli, "list", "orders", "--limit", "3", "--json"))
    assert [e["release_ms"] for e in entries] == [T0, T0 + 1000, T0 + 1000]  # 1 s buckets
    assert entries[0]["schema_id"] == "0x" + "ff" * 16  # not text: shown whole, in hex
    assert entries[0]["error"]["reason"] == "unknown_schema"  # no such schema registered


def test_list_decodes_entries_through_the_registry(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    async def main() -> str:
        client = sync_redis.asyncio.Redis.from_url(server.url)
        try:
            publisher = Publisher(client)
            for n in range(2):
                await publisher.schedule("orders", Struct(fields={"n": Value(number_value=n)}),
                                         delay=3600.0 + n, headers={"shop": "north"})  # fmt: skip
            return (await SchemaCache(SchemaRegistry(client)).id_for(Struct.DESCRIPTOR)).decode()
        finally:
            await client.aclose()

    schema_id = anyio.run(main)
    entries = as_json(run(cli, "list", "orders", "--json"))
    assert [e["message"] for e in entries] == [{"n": 0}, {"n": 1}]
    assert entries[0]["schema_id"] == schema_id  # the whole id, as the registry names it
    assert entries[0]["fields"]["h:shop"] == "north"
    table = run(cli, "list", "orders").stdout
    assert schema_id in table
    assert '{"n": 1.0}' in table  # a Struct number is a double


def test_list_of_an_empty_store_says_so(cli: CliRunner, db: sync_redis.Redis) -> None:
    result = run(cli, "list", "nothing-here")
    assert result.exit_code == 0
    assert "nothing waits for nothing-here" in result.stdout


def test_move_now_releases_entries_that_are_not_due(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    schedule(server.url, "orders", 10)
    result = run(cli, "move-now", "orders", "--limit", "4", "--yes")
    assert "moved 4 entries" in result.stdout
    assert db.xlen("orders") == 4
    result = run(cli, "move-now", "orders", stdin="y\n")
    assert "moved 6 entries" in result.stdout
    assert db.xlen("orders") == 10


def test_move_now_asks_first(cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer) -> None:
    schedule(server.url, "orders", 2)
    result = run(cli, "move-now", "orders", stdin="n\n")
    assert result.exit_code == 1
    assert db.exists("orders") == 0


def test_a_bad_limit_names_the_fix(cli: CliRunner, db: sync_redis.Redis) -> None:
    result = run(cli, "list", "orders", "--limit", "0")
    assert result.exit_code == 2
    assert "fix:" in result.stderr


def test_an_unreachable_server_names_the_fix() -> None:
    runner = CliRunner(env={"GRISTMILL_REDIS_URL": "redis://127.0.0.1:1/0"})
    result = runner.invoke(runtime, ["delayed", "stats"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "GRISTMILL_REDIS_URL" in result.stderr
