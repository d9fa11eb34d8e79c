"""JSON out: `gristmill.decode`, `runtime tail` and `runtime dlq show`, through the registry."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis

from gristmill import decode, keys
from gristmill.cli import runtime
from gristmill.envelope import seal
from gristmill.errors import DecodeError
from gristmill.failures.deadletter import build_fields
from gristmill.producer import Publisher
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.jsonformat import to_json
from gristmill.schemas.registry import SchemaRegistry
from tests.helpers.procs import python_module
from tests.jsonio.test_jsonformat import Everything, Point
from tests.typed_redis import raw, xrange

if TYPE_CHECKING:
    import redis as sync_redis
    from click.testing import CliRunner

    from gristmill.embedded import EmbeddedServer

SAMPLE = Everything(name="n", big=2**60, colour=2, counts={"a": 1}, snake_case_name="s")


async def test_decode_returns_the_message_or_its_json(redis: Redis) -> None:
    await Publisher(redis).publish("s", SAMPLE)
    await raw(redis, "XADD", "s", "*", "payload", b'{"raw": [1]}')
    (_, first), (_, second) = await xrange(redis, "s")
    message = await decode(first, redis)  # a class built from the registry's record
    assert message.DESCRIPTOR.full_name == "kinds.Everything"
    assert message.SerializeToString(deterministic=True) == SAMPLE.SerializeToString(
        deterministic=True
    )
    assert await decode(first, redis, as_json=True) == to_json(SAMPLE)
    assert (await decode(first, redis, as_json=True))["customName"] == "s"
    assert await decode(second, redis, as_json=True) == {"raw": [1]}
    with pytest.raises(DecodeError) as not_an_object:
        await decode([b"payload", b"[1, 2]"], redis, as_json=True)
    assert not_an_object.value.reason == "json_invalid"  # as a JSON processor dead-letters it
    with pytest.raises(DecodeError, match="missing_field"):
        await decode(second, redis)
    with pytest.raises(DecodeError) as unknown:
        await decode([b"schema_id", b"s1AAAAAAAAAAAAAAAA", b"payload", b""], redis)
    assert unknown.value.reason == "unknown_schema"


def _sealed(url: str, message: Any) -> list[bytes]:
    async def register() -> bytes:
        client = Redis.from_url(url)
        try:
            return await SchemaCache(SchemaRegistry(client)).id_for(message.DESCRIPTOR)
        finally:
            await client.aclose()

    return seal(asyncio.run(register()), message.SerializeToString(), headers={"tenant": "t"})


def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_tail_prints_entries_of_every_kind_as_json_lines(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    fields = _sealed(server.url, Point(x=3, y=4))
    send = db.execute_command
    send("XADD", "s", "*", *fields)  # type: ignore[no-untyped-call]
    send("XADD", "s", "*", "payload", b'{"from": "a bridge"}')  # type: ignore[no-untyped-call]
    send("XADD", "s", "*", "schema_id", "s1nope", "payload", b"")  # type: ignore[no-untyped-call]
    dead = build_fields(fields, reason="handler", origin_stream="s", origin_id="1-0", attempts=1,
                        last_failure_ms=5, message="no")  # fmt: skip
    send("XADD", "s", "*", *dead)  # type: ignore[no-untyped-call]
    result = cli.invoke(runtime, ["tail", "s", "--no-follow"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    good, bridged, broken, lettered = _lines(result.stdout)
    assert good["message"] == {"x": 3, "y": 4}
    assert good["fields"] == {"h:tenant": "t"}
    assert bridged["message"] == {"from": "a bridge"}
    assert broken["error"]["reason"] == "unknown_schema"
    assert lettered["message"] == {"x": 3, "y": 4}
    assert lettered["fields"]["dl:reason"] == "handler"
    assert len(_lines(cli.invoke(runtime, ["tail", "s", "--no-follow", "--last", "2"]).stdout)) == 2


def test_tail_with_a_group_resumes_and_refuses_a_processors_group(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    send = db.execute_command
    result = cli.invoke(runtime, ["tail", "s", "--group", "mine", "--no-follow"])
    assert result.exit_code == 0, result.output  # created at the end: nothing yet
    for n in range(3):
        send("XADD", "s", "*", "payload", b'{"n": %d}' % n)  # type: ignore[no-untyped-call]
    first = cli.invoke(runtime, ["tail", "s", "--group", "mine", "--no-follow"])
    assert [line["message"]["n"] for line in _lines(first.stdout)] == [0, 1, 2], first.output
    again = cli.invoke(runtime, ["tail", "s", "--group", "mine", "--no-follow"])
    assert _lines(again.stdout) == []  # acked as printed
    send("XGROUP", "CREATE", "s", "app.proc", "0")  # type: ignore[no-untyped-call]
    send("XREADGROUP", "GROUP", "app.proc", "worker-1", "COUNT", "1", "STREAMS", "s", ">")  # type: ignore[no-untyped-call]
    refused = cli.invoke(runtime, ["tail", "s", "--group", "app.proc", "--no-follow"])
    assert refused.exit_code != 0
    assert "worker-1" in refused.stderr


def test_dlq_show_prints_the_payload_as_json_beside_the_dl_fields(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    fields = _sealed(server.url, Point(x=7))
    dead = build_fields(fields, reason="handler", origin_stream="orders", origin_id="1-0",
                        attempts=2, last_failure_ms=5, message="refused")  # fmt: skip
    entry_id = db.execute_command("XADD", keys.dead_lane("orders", "billing"), "*", *dead)  # type: ignore[no-untyped-call]
    one = cli.invoke(runtime, ["dlq", "show", "orders", "billing", entry_id.decode(), "--json"])
    shown = json.loads(one.stdout)
    assert shown["message"] == {"x": 7}
    assert shown["reason"] == "handler"
    listed = json.loads(cli.invoke(runtime, ["dlq", "show", "orders", "billing", "--json"]).stdout)
    assert listed[0]["message"] == {"x": 7}
    table = cli.invoke(runtime, ["dlq", "show", "orders", "billing", entry_id.decode()])
    assert '"x": 7' in table.stdout
    assert "reason" in table.stdout


async def test_tail_follows_new_entries(server: EmbeddedServer, redis: Redis) -> None:
    env = {"GRISTMILL_REDIS_URL": server.url}
    with python_module("gristmill", "tail", "s", "--last", "0", env=env) as proc:
        for n in range(40):  # until the tail is reading: it prints what arrives after it started
            await raw(redis, "XADD", "s", "*", "payload", b'{"n": %d}' % n)
            await asyncio.sleep(0.25)
        line = await proc.wait_for_line_async('"n": 39', within=60)
        assert json.loads(line)["message"] == {"n": 39}
