"""The delayed store and one sweep batch against the real server: layouts, bounds, fencing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from redis.exceptions import ResponseError

from gristmill import keys, scripts
from gristmill.clock import FakeClock
from gristmill.timing.delayed import DelayedStore, Layout
from gristmill.timing.packing import (
    FIELD_CODES,
    pack_array_header,
    pack_entry,
    pack_str,
    pack_uint,
)
from tests.timing.streams import read_entries, read_fields

if TYPE_CHECKING:
    from redis.asyncio import Redis

T0 = 1_700_000_000_000  # a bucket boundary for 1 s buckets
LEASE = keys.lease("sweeper")


def entry(n: int) -> list[bytes]:
    return [b"schema_id", b"s" * 16, b"payload", b"%d" % n]


def make_store(redis: Redis, layout: Layout = "buckets") -> DelayedStore:
    return DelayedStore(redis, layout=layout, bucket_ms=1000, clock=FakeClock(T0))


@pytest.mark.parametrize("layout", ["buckets", "zset"])
async def test_every_coded_field_name_survives_the_sweep(redis: Redis, layout: Layout) -> None:
    store = make_store(redis, layout)
    fields = [item for name in FIELD_CODES for item in (name, b"v-" + name)]
    fields += [b"h:user", b"\x00\xff binary", b"x" * 40, b"y" * 300]
    await store.schedule("orders", fields, T0)
    assert await store.move_now("orders") == 1
    assert await read_fields(redis, "orders") == [fields]


async def test_buckets_release_at_the_bucket_end_never_early(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", entry(1), T0 + 1)  # bucket ends at T0 + 1000
    early = await store.sweep_batch("orders", token="", lease_key=LEASE, up_to_ms=T0 + 999)
    assert (early.moved, early.next_release_ms) == (0, T0 + 1000)
    due = await store.sweep_batch("orders", token="", lease_key=LEASE, up_to_ms=T0 + 1000)
    assert (due.moved, due.next_release_ms) == (1, None)
    assert await redis.exists(keys.delayed_bucket("orders", T0 + 1000)) == 0


async def test_zset_layout_releases_at_the_entry_time(redis: Redis) -> None:
    store = make_store(redis, "zset")
    await store.schedule("orders", entry(1), T0 + 1)
    early = await store.sweep_batch("orders", token="", lease_key=LEASE, up_to_ms=T0)
    assert (early.moved, early.next_release_ms) == (0, T0 + 1)
    due = await store.sweep_batch("orders", token="", lease_key=LEASE, up_to_ms=T0 + 1)
    assert due.moved == 1


@pytest.mark.parametrize("layout", ["buckets", "zset"])
async def test_equal_entries_do_not_collapse(redis: Redis, layout: Layout) -> None:
    store = make_store(redis, layout)
    await store.schedule_many([("orders", entry(7), T0)] * 3)
    assert (await store.stats("orders")).entries == 3
    assert await store.move_now("orders") == 3


async def test_a_store_holding_both_layouts_is_swept_whole(redis: Redis) -> None:
    await make_store(redis, "buckets").schedule("orders", entry(1), T0 + 10)
    await make_store(redis, "zset").schedule("orders", entry(2), T0 + 20)
    store = make_store(redis)
    result = await store.sweep_batch("orders", token="", lease_key=LEASE, up_to_ms=T0 + 1000)
    assert result.moved == 2
    assert sorted(f[3] for f in await read_fields(redis, "orders")) == [b"1", b"2"]


@pytest.mark.parametrize("layout", ["buckets", "zset"])
async def test_a_batch_moves_at_most_its_limit(redis: Redis, layout: Layout) -> None:
    store = make_store(redis, layout)
    # 2,500 entries in 3 buckets: one bucket is larger than a batch
    await store.schedule_many(("orders", entry(n), T0 + 1000 * (n % 3)) for n in range(2500))
    moved = []
    for _ in range(4):
        result = await store.sweep_batch(
            "orders", token="", lease_key=LEASE, up_to_ms=T0 + 5000, limit=1000
        )
        moved.append(result.moved)
    assert moved == [1000, 1000, 500, 0]
    assert sorted(int(f[3]) for f in await read_fields(redis, "orders")) == list(range(2500))


async def test_a_stale_token_is_refused_and_nothing_moves(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", entry(1), T0)
    await redis.set(LEASE, "the-current-leader")
    refused = await store.sweep_batch("orders", token="ex-leader", lease_key=LEASE, up_to_ms=T0)
    assert (refused.refused, refused.moved) == (True, 0)
    assert await redis.exists("orders") == 0
    ok = await store.sweep_batch("orders", token="the-current-leader", lease_key=LEASE, up_to_ms=T0)
    assert (ok.refused, ok.moved) == (False, 1)


async def test_no_lease_at_all_refuses_a_token(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", entry(1), T0)
    result = await store.sweep_batch("orders", token="anyone", lease_key=LEASE, up_to_ms=T0)
    assert result.refused


async def test_server_time_is_used_when_no_time_is_given(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", entry(1), T0)  # long past by the server's clock
    result = await store.sweep_batch("orders", token="", lease_key=LEASE)
    assert result.moved == 1
    server_s, _ = await redis.time()
    assert abs(result.now_ms - server_s * 1000) < 60_000


async def test_a_wake_is_published_only_for_a_new_earliest(redis: Redis) -> None:
    store = make_store(redis)
    pubsub = redis.pubsub()
    await pubsub.subscribe(store.wake_channel)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation

    async def wakes() -> int:
        count = 0
        while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2):
            count += 1
        return count

    await store.schedule("orders", entry(1), T0 + 5000)  # empty store: earliest
    assert await wakes() == 1
    await store.schedule("orders", entry(2), T0 + 9000)  # later
    await store.schedule("orders", entry(3), T0 + 4500)  # same bucket as the earliest
    assert await wakes() == 0
    await store.schedule("orders", entry(4), T0 + 1000)  # earlier
    assert await wakes() == 1
    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


async def test_schedule_registers_its_target(redis: Redis) -> None:
    store = make_store(redis)
    await store.register_targets(["payments"])
    await store.schedule("orders", entry(1), T0)
    assert await store.targets() == ["orders", "payments"]


async def test_an_execution_class_lands_in_its_lane(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", entry(1), T0, execution_class="long")
    lane = keys.class_lane("orders", "long")
    assert await store.targets() == [lane]
    assert await store.move_now(lane) == 1
    assert await redis.xlen(lane) == 1
    assert await redis.exists("orders") == 0


async def test_publish_with_delay_or_at(redis: Redis) -> None:
    store = make_store(redis, "zset")
    assert await store.publish("orders", entry(1), delay=2.5) == T0 + 2500
    assert await store.publish("orders", entry(2), at=(T0 + 7000) / 1000) == T0 + 7000
    assert [e.release_ms for e in await store.peek("orders")] == [T0 + 2500, T0 + 7000]
    with pytest.raises(ValueError, match="exactly one"):
        await store.publish("orders", entry(3))


async def test_stats_and_peek_read_both_kinds_of_member(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule_many(("orders", entry(n), T0 + 100 * n) for n in range(25))
    await make_store(redis, "zset").schedule("orders", entry(99), T0 + 50_000)
    stats = await store.stats("orders")
    assert (stats.entries, stats.buckets) == (26, 4)  # T0, +1 s, +2 s, +3 s
    assert (stats.earliest_release_ms, stats.latest_release_ms) == (T0, T0 + 50_000)
    first = await store.peek("orders", limit=3)
    assert [e.fields[3] for e in first] == [b"0", b"1", b"2"]
    assert [e.release_ms for e in first] == [T0, T0 + 1000, T0 + 1000]
    assert len(await store.peek("orders", limit=100)) == 26


async def test_move_now_moves_entries_not_yet_due(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule_many(("orders", entry(n), T0 + 86_400_000 * n) for n in range(1, 1500))
    assert await store.move_now("orders", limit=10) == 10
    assert await store.move_now("orders") == 1489
    assert (await store.stats("orders")).entries == 0


async def test_scheduling_survives_a_script_flush(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", entry(1), T0)
    await redis.script_flush()
    assert await store.schedule_many(("orders", entry(n), T0) for n in range(3)) == 3
    assert (await store.stats("orders")).entries == 4


async def consume_all(redis: Redis, stream: str) -> None:
    await redis.xreadgroup("workers", "w1", {stream: ">"})
    for entry_id, _ in await read_entries(redis, stream):
        await redis.xack(stream, "workers", entry_id)


async def test_eager_releases_early_only_to_an_idle_target(redis: Redis) -> None:
    store = make_store(redis, "zset")
    await redis.xgroup_create("orders", "workers", id="$", mkstream=True)
    await store.schedule_many(("orders", entry(n), T0 + 1000 * n) for n in range(1, 4))

    async def sweep() -> int:
        result = await store.sweep_batch(
            "orders", token="", lease_key=LEASE, up_to_ms=T0, eager_horizon_ms=2000
        )
        return result.moved

    assert await sweep() == 2  # idle: everything within 2 s is released early
    assert await sweep() == 0  # those two are unread: the target is busy now
    await consume_all(redis, "orders")
    assert await sweep() == 0  # idle again, but the last entry is beyond the horizon


async def test_eager_needs_a_reader(redis: Redis) -> None:
    store = make_store(redis, "zset")
    await store.schedule("orders", entry(1), T0 + 1000)
    result = await store.sweep_batch(
        "orders", token="", lease_key=LEASE, up_to_ms=T0, eager_horizon_ms=5000
    )
    assert result.moved == 0  # no group reads the target: releasing early helps nobody
    await anyio.lowlevel.checkpoint()


async def test_a_deleted_targets_set_is_refilled_by_the_next_schedule(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", entry(1), T0)
    await redis.delete(keys.delayed_targets())  # an operator's cleanup, or a FLUSHALL
    await store.schedule("orders", entry(2), T0)
    assert await store.targets() == ["orders"]


async def test_a_corrupt_entry_is_delivered_raw_and_blocks_nothing(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", entry(1), T0)
    bucket = keys.delayed_bucket("orders", T0)
    await redis.rpush(bucket, b"\x93\xa1a")  # an array of 3: not name/value pairs
    await redis.rpush(bucket, b"\x92\xa1")  # truncated
    await store.schedule("orders", entry(2), T0)
    assert await store.move_now("orders") == 4
    fields = await read_fields(redis, "orders")
    assert [f[3] for f in fields if f[0] == b"schema_id"] == [b"1", b"2"]
    assert [f for f in fields if f[0] == b"delayed_corrupt"] == [
        [b"delayed_corrupt", b"\x93\xa1a"],
        [b"delayed_corrupt", b"\x92\xa1"],
    ]


async def test_a_target_that_is_not_a_stream_is_refused_before_any_write(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", entry(1), T0)
    await redis.set("orders", "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await store.move_now("orders")
    assert (await store.stats("orders")).entries == 1  # still waiting, not lost


async def test_a_batch_with_a_bad_member_writes_nothing(redis: Redis) -> None:
    blob = pack_array_header(6) + b"".join(
        (pack_uint(1), pack_uint(T0), pack_str(pack_entry(entry(1))))
        + (pack_uint(1), pack_uint(T0), pack_str(b"123"))  # not a packed entry
    )
    store_key = keys.delayed_store("orders")
    with pytest.raises(ResponseError, match="not packed"):
        await scripts.load("delayed_schedule")(
            redis, [store_key], [keys.delayed_wake(), 1000, blob]
        )
    assert await redis.exists(store_key, keys.delayed_bucket("orders", T0)) == 0


@pytest.mark.parametrize("name", ["Long", "a b", "x" * 33, "{tag}", "a:b"])
async def test_execution_class_names_are_plain(redis: Redis, name: str) -> None:
    with pytest.raises(ValueError, match="execution class"):
        await make_store(redis).schedule("orders", entry(1), T0, execution_class=name)
