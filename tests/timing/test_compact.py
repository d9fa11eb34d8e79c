"""The bucket layout's compact entries: the schema id stored once per store, not per entry.

Against the real server: what is stored, that it comes back whole (and in field order)
through the sweep, that entries packed before the compact form existed are still swept, and
that a compact entry whose schema number is lost is delivered as delayed_corrupt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from gristmill import keys
from gristmill.clock import FakeClock
from gristmill.timing.delayed import DelayedStore
from gristmill.timing.packing import pack_entry, pack_varint, unpack_compact
from tests.timing.streams import read_fields

if TYPE_CHECKING:
    from redis.asyncio import Redis

T0 = 1_700_000_000_000
ID_A, ID_B = b"sch-aaaaaaaaaaaaaa", b"sch-bbbbbbbbbbbbbb"  # 18 characters, like real ids


def make_store(redis: Redis) -> DelayedStore:
    return DelayedStore(redis, layout="buckets", bucket_ms=1000, clock=FakeClock(T0))


async def test_a_plain_entry_is_stored_as_its_payload_and_two_bytes(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule_many(
        [("orders", [b"schema_id", ID_A, b"payload", b"p" * 80], T0),
         ("orders", [b"schema_id", ID_B, b"payload", b"q" * 80], T0),
         ("orders", [b"schema_id", ID_A, b"payload", b"r" * 200], T0)]
    )  # fmt: skip
    stored = [
        m
        for m in await redis.lrange(keys.delayed_bucket("orders", T0), 0, -1)
        if isinstance(m, bytes)
    ]
    assert [len(member) for member in stored] == [82, 82, 202]  # 0xC1, ref, payload
    assert [unpack_compact(member)[0] for member in stored] == [1, 2, 1]
    assert await redis.hgetall(keys.delayed_schema_ids("orders")) == {b"1": ID_A, b"2": ID_B}
    assert [e.fields for e in await store.peek("orders")] == [
        [b"schema_id", ID_A, b"payload", b"p" * 80],
        [b"schema_id", ID_B, b"payload", b"q" * 80],
        [b"schema_id", ID_A, b"payload", b"r" * 200],
    ]
    assert await store.move_now("orders") == 3
    assert [f[1] for f in await read_fields(redis, "orders")] == [ID_A, ID_B, ID_A]


async def test_extra_fields_come_back_in_their_order(redis: Redis) -> None:
    store = make_store(redis)
    fields = [b"schema_id", ID_A, b"payload", b"\x00\xff" * 40, b"attempt", b"3",
              b"h:tenant", b"t-1", b"key", b"k"]  # fmt: skip
    await store.schedule("orders", fields, T0)
    assert [e.fields for e in await store.peek("orders")] == [fields]
    assert await store.move_now("orders") == 1
    assert await read_fields(redis, "orders") == [fields]


async def test_entries_of_the_older_packed_form_are_still_swept(redis: Redis) -> None:
    store = make_store(redis)
    old = [b"schema_id", ID_A, b"payload", b"old"]
    await redis.rpush(keys.delayed_bucket("orders", T0), pack_entry(old))  # as stored before
    await redis.zadd(keys.delayed_store("orders"), {str(T0): T0})
    await store.schedule("orders", [b"schema_id", ID_A, b"payload", b"new"], T0)
    assert [e.fields[3] for e in await store.peek("orders")] == [b"old", b"new"]
    assert await store.move_now("orders") == 2
    assert [f[3] for f in await read_fields(redis, "orders")] == [b"old", b"new"]


async def test_a_lost_schema_number_delivers_the_entry_as_corrupt(redis: Redis) -> None:
    store = make_store(redis)
    await store.schedule("orders", [b"schema_id", ID_A, b"payload", b"p"], T0)
    await redis.delete(keys.delayed_schema_ids("orders"))
    assert await store.move_now("orders") == 1
    [fields] = await read_fields(redis, "orders")
    assert fields[0] == b"delayed_corrupt"
    assert unpack_compact(fields[1])[2] == b"p"


@given(st.integers(min_value=0, max_value=2**53))
def test_varints_round_trip(value: int) -> None:
    plain = b"\xc1" + pack_varint(value * 2) + b"tail"
    assert unpack_compact(plain) == (value, [], b"tail")
    extra = pack_entry([b"key", b"k"])
    with_extra = b"\xc1" + pack_varint(value * 2 + 1) + pack_varint(len(extra)) + extra + b"t"
    assert unpack_compact(with_extra) == (value, [b"key", b"k"], b"t")
