"""Dead-letter lanes against the real server: find, read, replay (atomically), delete."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from gristmill import keys, scripts
from gristmill.failures import lanes
from gristmill.failures.deadletter import parse_fields
from tests.failures.lanes_data import add_dead, original

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEAD = keys.dead_lane("orders", "billing")
RETRY = keys.retry_lane("orders", "billing")


async def raw_entries(redis: Redis, key: str) -> list[list[bytes]]:
    reply = await redis.execute_command(b"XRANGE", key, "-", "+")  # type: ignore[no-untyped-call]
    return [fields for _, fields in reply]


@given(
    st.text(min_size=1, max_size=12, alphabet="ab{}:.x-"),
    st.text(min_size=1, max_size=8, alphabet="gh:dea{}"),
)
def test_split_dead_lane_inverts_dead_lane(stream: str, group: str) -> None:
    parts = keys.split_dead_lane(keys.dead_lane(stream, group))
    assert parts is not None
    assert keys.dead_lane(*parts) == keys.dead_lane(stream, group)
    assert keys.retry_lane(*parts) == keys.retry_lane(stream, group)


def test_split_dead_lane_refuses_other_keys() -> None:
    for key in ("gm:schemas", "{orders}:retry:billing", "orders:dead:billing", "{o}:dead:"):
        assert keys.split_dead_lane(key) is None


async def test_find_lanes_scans_only_dead_lanes(redis: Redis) -> None:
    await add_dead(redis, 1, "decode_error")
    await add_dead(redis, 2, "handler", group="shipping")
    await add_dead(redis, 3, "oversize", stream="{eu}.payments", group="billing")
    await redis.set("{x}:dead:not-a-stream", "1")  # matches the pattern, wrong type
    await redis.xadd("plain:dead:stream", {"a": "1"})  # a stream, but not a lane name
    await redis.xadd(RETRY, {"a": "1"})
    found = await lanes.find_lanes(redis)
    assert [(lane.stream, lane.group, lane.entries) for lane in found] == [
        ("{eu}.payments", "billing", 1),
        ("orders", "billing", 1),
        ("orders", "shipping", 1),
    ]  # fmt: skip (sorted by key: `{eu}.payments:...` before `{orders}:...`)
    assert [lane.group for lane in await lanes.find_lanes(redis, stream="orders")] == [
        "billing", "shipping",
    ]  # fmt: skip
    billing = await lanes.find_lanes(redis, group="billing")
    assert {lane.stream for lane in billing} == {"orders", "{eu}.payments"}


async def test_read_entries_filters_by_reason_range_and_limit(redis: Redis) -> None:
    ids = [await add_dead(redis, n, "handler" if n % 2 else "decode_error") for n in range(10)]
    everything = [e.entry_id async for e in lanes.read_entries(redis, "orders", "billing")]
    assert everything == ids
    handler = lanes.Selection(frozenset({"handler"}))
    assert [e.entry_id async for e in lanes.read_entries(redis, "orders", "billing", handler)] == (
        ids[1::2]
    )
    ranged = lanes.Selection(start=ids[2], end=ids[5])
    assert [e.entry_id async for e in lanes.read_entries(redis, "orders", "billing", ranged)] == (
        ids[2:6]
    )
    limited = lanes.Selection(frozenset({"decode_error"}), limit=3)
    assert [e.entry_id async for e in lanes.read_entries(redis, "orders", "billing", limited)] == (
        ids[0:6:2]
    )


async def test_reading_pages_through_a_long_lane(redis: Redis) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(lanes.PAGE * 2 + 7):
            pipe.execute_command("XADD", DEAD, "*", "h:n", str(n), "dl:reason", "handler")
        await pipe.execute()
    seen = [e.record.fields[1] async for e in lanes.read_entries(redis, "orders", "billing")]
    assert seen == [str(n).encode() for n in range(lanes.PAGE * 2 + 7)]
    counts, partial = await lanes.reason_counts(redis, "orders", "billing", limit=100)
    assert counts == {"handler": 100}
    assert partial


async def test_entries_added_while_reading_are_not_read(redis: Redis) -> None:
    for n in range(3):
        await add_dead(redis, n, "handler")
    reading = lanes.read_entries(redis, "orders", "billing")
    first = await anext(reading)
    await add_dead(redis, 99, "handler")  # e.g. a replayed entry failing again
    rest = [entry async for entry in reading]
    assert [e.record.origin_id for e in [first, *rest]] == ["0-0", "1-0", "2-0"]


async def test_replay_moves_exact_original_fields_with_a_fresh_attempt(redis: Redis) -> None:
    tricky = [b"a", b"1", b"a", b"2", b"dl:user", b"\xff\x00", b"attempt", b"3", b"key", b"k"]
    await add_dead(redis, 1, "handler", fields=tricky)
    await add_dead(redis, 2, "decode_error")
    result = await lanes.replay(redis, "orders", "billing")
    assert (result.moved, result.skipped, result.refused) == (2, 0, 0)
    assert result.moved_by_reason == {"handler": 1, "decode_error": 1}
    assert await redis.xlen(DEAD) == 0
    assert await raw_entries(redis, RETRY) == [
        [b"a", b"1", b"a", b"2", b"dl:user", b"\xff\x00", b"key", b"k"], original(2),
    ]  # fmt: skip
    assert await redis.xlen("orders") == 0  # never back to the shared input stream


async def test_replay_by_reason_and_range_leaves_the_rest(redis: Redis) -> None:
    ids = [await add_dead(redis, n, "handler" if n < 5 else "oversize") for n in range(10)]
    result = await lanes.replay(
        redis, "orders", "billing", lanes.Selection(frozenset({"handler"}), start=ids[2])
    )
    assert result.moved == 3
    left = [parse_fields(fields).origin_id for fields in await raw_entries(redis, DEAD)]
    assert left == ["0-0", "1-0"] + [f"{n}-0" for n in range(5, 10)]
    moved = [fields[5] for fields in await raw_entries(redis, RETRY)]
    assert moved == [b"2", b"3", b"4"]


async def test_replay_batches_a_large_lane(redis: Redis) -> None:
    count = lanes.REPLAY_BATCH * 3 + 1
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.execute_command("XADD", DEAD, "*", "h:n", str(n), "dl:reason", "handler")
        await pipe.execute()
    before = await script_calls(redis)
    result = await lanes.replay(redis, "orders", "billing")
    assert result.moved == count
    assert await script_calls(redis) - before == 4  # one call per batch of REPLAY_BATCH
    assert [fields[1] for fields in await raw_entries(redis, RETRY)] == [
        str(n).encode() for n in range(count)
    ]


async def script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


async def test_concurrent_replays_move_each_entry_once(redis: Redis) -> None:
    for n in range(300):
        await add_dead(redis, n, "handler")
    results = await asyncio.gather(*(lanes.replay(redis, "orders", "billing") for _ in range(3)))
    assert sum(result.moved for result in results) == 300
    assert await redis.xlen(RETRY) == 300
    assert await redis.xlen(DEAD) == 0


async def test_the_script_skips_entries_already_gone(redis: Redis) -> None:
    entry_id = await add_dead(redis, 1, "handler")
    await redis.xdel(DEAD, entry_id)
    moved, skipped = await scripts.load("dlq_replay")(
        redis, [DEAD, RETRY], [1, entry_id, 2, b"h:n", b"1"]
    )
    assert (moved, skipped) == (0, 1)
    assert await redis.exists(RETRY) == 0


async def test_entries_without_original_fields_are_refused(redis: Redis) -> None:
    send = redis.execute_command
    await send("XADD", DEAD, "*", "dl:reason", "handler")  # type: ignore[no-untyped-call]
    result = await lanes.replay(redis, "orders", "billing")
    assert (result.moved, result.refused) == (0, 1)
    assert await redis.xlen(DEAD) == 1


async def test_delete_removes_exactly_the_selected_ids(redis: Redis) -> None:
    ids = [await add_dead(redis, n, "handler" if n % 3 else "oversize") for n in range(9)]
    oversize = lanes.Selection(frozenset({"oversize"}))
    selected = await lanes.select_ids(redis, "orders", "billing", oversize)
    assert selected == ids[::3]
    assert await lanes.delete(redis, "orders", "billing", selected) == 3
    assert await lanes.delete(redis, "orders", "billing", selected) == 0
    assert await redis.xlen(DEAD) == 6
