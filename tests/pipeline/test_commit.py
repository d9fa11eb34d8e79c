from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from gristmill.errors import ReplyError
from gristmill.pipeline.publish import COMMIT, Commit
from gristmill.pipeline.resp import RespConnection
from tests.typed_redis import raw, xrange

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer


async def send(connection: RespConnection, commit: Commit, consumer: bytes) -> list[bytes]:
    """Run the commit of group `g`; the ids it skipped (no longer `consumer`'s)."""
    payload = commit.pack(b"g", consumer, b"gm:delayed:wake", 1000)
    try:
        reply = await connection.call_packed(payload)
    except ReplyError as exc:
        if exc.code != "NOSCRIPT":
            raise
        await connection.call(b"SCRIPT", b"LOAD", COMMIT.source)
        reply = await connection.call_packed(payload)
    return list(reply[1:])


async def _read(redis: Redis, consumer: str, count: int) -> list[bytes]:
    reply = await redis.xreadgroup("g", consumer, {"in": ">"}, count=count)
    return [entry_id for entry_id, _ in cast("Any", reply)[0][1]]


async def test_one_call_publishes_outputs_and_acks_inputs(
    server: EmbeddedServer, redis: Redis
) -> None:
    await redis.xgroup_create("in", "g", id="0", mkstream=True)
    for n in range(3):
        await redis.xadd("in", {"n": str(n)})
    ids = await _read(redis, "c1", 10)
    commit = Commit()
    for entry_id in ids:
        commit.entry(b"in", entry_id, [(b"out", [b"from", entry_id]), (b"audit", [b"x", b"1"])])
    connection = await RespConnection.open(server.url, connect_timeout=2)
    try:
        await redis.script_load(COMMIT.source)  # a first call would also count a NOSCRIPT try
        await raw(redis, "CONFIG", "RESETSTAT")
        skipped = await send(connection, commit, b"c1")
        stats = await redis.info("commandstats")
    finally:
        connection.close()
    assert skipped == []
    assert [fields[b"from"] for _, fields in await xrange(redis, "out")] == ids
    assert await redis.xlen("audit") == 3
    assert (await redis.xpending("in", "g"))["pending"] == 0
    # one script call did it all: no separate XADD/XACK round trips from the client
    assert stats["cmdstat_evalsha"]["calls"] == 1


async def test_entries_claimed_away_add_neither_outputs_nor_acks(
    server: EmbeddedServer, redis: Redis
) -> None:
    await redis.xgroup_create("in", "g", id="0", mkstream=True)
    for n in range(4):
        await redis.xadd("in", {"n": str(n)})
    ids = await _read(redis, "slow", 10)
    # another consumer claims two of them while "slow" is still working
    await raw(redis, "XCLAIM", "in", "g", "fast", 0, *ids[:2])
    commit = Commit()
    for entry_id in ids:
        commit.entry(b"in", entry_id, [(b"out", [b"from", entry_id])])
    connection = await RespConnection.open(server.url, connect_timeout=2)
    try:
        skipped = await send(connection, commit, b"slow")
    finally:
        connection.close()
    assert skipped == ids[:2]
    assert [fields[b"from"] for _, fields in await xrange(redis, "out")] == ids[2:]
    pending = await redis.xpending_range("in", "g", "-", "+", 10)
    assert [(p["message_id"], p["consumer"]) for p in pending] == [
        (ids[0], b"fast"),
        (ids[1], b"fast"),
    ]


async def test_script_is_reloaded_after_a_script_flush(
    server: EmbeddedServer, redis: Redis
) -> None:
    await redis.xgroup_create("in", "g", id="0", mkstream=True)
    await redis.xadd("in", {"n": "1"})
    ids = await _read(redis, "c", 10)
    await redis.script_flush()
    commit = Commit()
    commit.entry(b"in", ids[0], [])
    connection = await RespConnection.open(server.url, connect_timeout=2)
    try:
        assert await send(connection, commit, b"c") == []
    finally:
        connection.close()
    assert (await redis.xpending("in", "g"))["pending"] == 0


async def test_delayed_ops_park_entries_with_the_ack(server: EmbeddedServer, redis: Redis) -> None:
    from gristmill.keys import delayed_store
    from gristmill.timing.delayed import DelayedStore, pack_entry

    await redis.xgroup_create("in", "g", id="0", mkstream=True)
    await redis.xadd("in", {"n": "1"})
    ids = await _read(redis, "c", 10)
    commit = Commit()
    store = delayed_store("{in}:retry:g").encode()
    member = pack_entry([b"schema_id", b"s", b"payload", b"p", b"attempt", b"2"])
    commit.entry(b"in", ids[0], [], [(store, 1_700_000_001_500, member)])
    connection = await RespConnection.open(server.url, connect_timeout=2)
    try:
        assert await send(connection, commit, b"c") == []
    finally:
        connection.close()
    assert (await redis.xpending("in", "g"))["pending"] == 0
    waiting = await DelayedStore(redis).peek("{in}:retry:g")
    assert [(w.release_ms, w.fields) for w in waiting] == [
        (1_700_000_002_000, [b"schema_id", b"s", b"payload", b"p", b"attempt", b"2"])
    ]
