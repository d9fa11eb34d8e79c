from __future__ import annotations

from typing import TYPE_CHECKING

from gristmill.clock import FakeClock
from gristmill.pipeline.upkeep import (
    Retention,
    forget_idle_consumers,
    keep_claimed,
    trim,
    trim_all,
)
from tests.typed_redis import raw, xrange

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def _fill(redis: Redis, stream: str, count: int, start_ms: int = 1_000_000) -> list[bytes]:
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.xadd(stream, {"n": str(n)}, id=f"{start_ms + n}-0")
        return list(await pipe.execute())


async def test_maxlen_trims_consumed_entries(redis: Redis) -> None:
    await _fill(redis, "s", 5000)
    await redis.xgroup_create("s", "g", id="$")  # the group has seen everything
    removed = await trim(redis, "s", Retention(maxlen=1000))
    assert removed > 0
    assert 1000 <= await redis.xlen("s") < 1500  # approximate: whole nodes only


async def test_trim_never_drops_what_a_group_has_not_read(redis: Redis) -> None:
    ids = await _fill(redis, "s", 5000)
    await redis.xgroup_create("s", "done", id="$")
    await redis.xgroup_create("s", "behind", id=ids[2999])  # has not read the last 2000
    await trim(redis, "s", Retention(maxlen=100))
    remaining = [entry_id for entry_id, _ in await xrange(redis, "s")]
    assert set(ids[3000:]) <= set(remaining)


async def test_trim_never_drops_pending_entries(redis: Redis) -> None:
    ids = await _fill(redis, "s", 3000)
    await redis.xgroup_create("s", "g", id="0")
    await redis.xreadgroup("g", "c", {"s": ">"}, count=3000)
    await redis.xack("s", "g", *ids[1000:])  # the first 1000 are still in the PEL
    await trim(redis, "s", Retention(maxlen=10))
    remaining = {entry_id for entry_id, _ in await xrange(redis, "s")}
    assert set(ids[:1000]) <= remaining
    # and a later XAUTOCLAIM finds them whole: nothing pending was deleted
    _, claimed, deleted = await redis.xautoclaim("s", "g", "c2", 0, count=1000)
    assert len(claimed) == 1000
    assert deleted == []


async def test_min_age_keeps_recent_entries(redis: Redis) -> None:
    clock = FakeClock(start_ms=1_010_000)
    await _fill(redis, "s", 10_000, start_ms=1_000_000)  # ids 1,000,000 .. 1,009,999 ms
    await redis.xgroup_create("s", "g", id="$")
    await trim(redis, "s", Retention(min_age=5.0), clock)
    first = (await xrange(redis, "s", count=1))[0][0]
    assert int(first.split(b"-")[0]) <= 1_005_000  # nothing younger than 5 s was removed
    assert await redis.xlen("s") < 10_000


async def test_consumers_holding_entries_are_never_forgotten(redis: Redis) -> None:
    await _fill(redis, "s", 10)
    await redis.xgroup_create("s", "g", id="0")
    await redis.xreadgroup("g", "holder", {"s": ">"}, count=5)
    await redis.xgroup_createconsumer("s", "g", "empty")
    assert await forget_idle_consumers(redis, [("s", "g", 0)]) == ["empty"]
    names = [c["name"] for c in await redis.xinfo_consumers("s", "g")]
    assert names == [b"holder"]
    assert (await redis.xpending("s", "g"))["pending"] == 5


async def test_upkeep_of_many_streams_is_one_round_trip_that_survives_a_script_flush(
    redis: Redis,
) -> None:
    for n in range(3):
        await _fill(redis, f"s{n}", 2000)
        await redis.xgroup_create(f"s{n}", "g", id="$")  # everything before is consumed
        await redis.xgroup_createconsumer(f"s{n}", "g", f"idle-{n}")
    await redis.script_flush()  # as after a restart: every call is refused with NOSCRIPT first
    removed = await trim_all(redis, {f"s{n}": Retention(maxlen=1000) for n in range(3)})
    lengths = [await redis.xlen(f"s{n}") for n in range(3)]
    assert removed == 6000 - sum(lengths)
    assert all(length < 2000 for length in lengths)
    await redis.script_flush()
    groups = [(f"s{n}", "g", 0) for n in range(3)]
    assert await forget_idle_consumers(redis, groups) == ["idle-0", "idle-1", "idle-2"]
    assert await forget_idle_consumers(redis, groups) == []


async def test_keep_claimed_resets_idle_only_for_our_entries(redis: Redis) -> None:
    ids = await _fill(redis, "s", 4)
    await redis.xgroup_create("s", "g", id="0")
    await redis.xreadgroup("g", "slow", {"s": ">"}, count=4)
    await raw(redis, "XCLAIM", "s", "g", "other", 0, ids[0])
    refreshed = await keep_claimed(redis, "s", "g", "slow", ids)
    assert refreshed == 3
    pending = await redis.xpending_range("s", "g", "-", "+", 10)
    assert {(p["message_id"], p["consumer"]) for p in pending} == {
        (ids[0], b"other"),
        *((entry_id, b"slow") for entry_id in ids[1:]),
    }
    # JUSTID: refreshing is not a delivery
    assert all(p["times_delivered"] == 1 for p in pending if p["consumer"] == b"slow")
