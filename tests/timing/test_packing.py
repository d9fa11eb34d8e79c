"""Packing entry fields for the delayed store, and bucket math: pure, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gristmill import keys
from gristmill.timing.due import due_ms_for, release_ms
from gristmill.timing.packing import FIELD_CODES, is_packed_entry, pack_entry, unpack_entry

ENTRY = [b"schema_id", b"s" * 16, b"payload", b"p" * 60]


def test_known_names_cost_one_byte() -> None:
    packed = pack_entry(ENTRY)
    # array header, 2 coded names, string headers (1 byte up to 31 bytes, then 2), the values
    assert len(packed) == 1 + 2 + 1 + 2 + 16 + 60
    assert unpack_entry(packed) == ENTRY


@pytest.mark.parametrize("size", [0, 31, 32, 255, 256, 65535, 65536])
def test_every_string_size_class_round_trips(size: int) -> None:
    fields = [b"h:blob", bytes(range(256)) * (size // 256) + bytes(size % 256)]
    assert unpack_entry(pack_entry(fields)) == fields


def test_many_fields_use_a_longer_array_header() -> None:
    fields = [f"h:{i}".encode() if n == 0 else b"v" for i in range(20) for n in (0, 1)]
    packed = pack_entry(fields)
    assert packed[0] == 0xDC
    assert unpack_entry(packed) == fields


@given(st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=300)), min_size=1))
def test_any_fields_round_trip(pairs: list[tuple[bytes, bytes]]) -> None:
    fields = [item for pair in pairs for item in pair]
    assert unpack_entry(pack_entry(fields)) == fields


def test_a_suffix_after_the_array_is_ignored() -> None:
    assert unpack_entry(pack_entry(ENTRY) + b"12345") == ENTRY


def test_members_are_told_apart_by_their_first_byte() -> None:
    assert is_packed_entry(pack_entry(ENTRY))
    assert not is_packed_entry(b"1700000000000")  # a bucket's member


@pytest.mark.parametrize("fields", [[], [b"only-a-name"]])
def test_fields_must_be_pairs(fields: list[bytes]) -> None:
    with pytest.raises(ValueError, match="pairs"):
        pack_entry(fields)


@pytest.mark.parametrize("member", [b"", b"123", b"\x92\xa5ab", b"\x92\x7f\xa1a", b"\x91\xc4"])
def test_garbage_is_refused(member: bytes) -> None:
    with pytest.raises(ValueError, match="packed|type|code|truncated"):
        unpack_entry(member)


def test_codes_are_the_envelope_names() -> None:
    assert FIELD_CODES[:2] == (b"schema_id", b"payload")
    assert len(set(FIELD_CODES)) == len(FIELD_CODES)


def test_release_rounds_up_to_the_bucket_end() -> None:
    assert release_ms(1000, 1000) == 1000
    assert release_ms(1001, 1000) == 2000
    assert release_ms(1999, 1000) == 2000
    assert release_ms(1234, 0) == 1234  # zset layout: exact


@given(st.integers(0, 2**50), st.integers(1, 3_600_000))
def test_release_is_never_early_and_at_most_a_bucket_late(due: int, width: int) -> None:
    release = release_ms(due, width)
    assert release % width == 0
    assert due <= release < due + width


def test_delay_counts_from_now() -> None:
    assert due_ms_for(1_000_000, delay=1.5) == 1_001_500
    assert due_ms_for(1_000_000, delay=0) == 1_000_000


def test_at_takes_an_aware_datetime_or_epoch_seconds() -> None:
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    assert due_ms_for(0, at=moment) == round(moment.timestamp() * 1000)
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    assert due_ms_for(0, at=plus_two) == due_ms_for(0, at=moment)
    assert due_ms_for(0, at=1_900_000_000.25) == 1_900_000_000_250


@pytest.mark.parametrize(
    ("delay", "at"),
    [(None, None), (1.0, 2.0), (-1.0, None), (float("nan"), None), (None, datetime(2030, 1, 1))],
)
def test_bad_due_arguments_are_refused(delay: float | None, at: datetime | float | None) -> None:
    with pytest.raises(ValueError, match="delay|at"):
        due_ms_for(0, delay=delay, at=at)


def test_lua_derives_bucket_and_sequence_keys_like_keys_py() -> None:
    # lib/delayed_add.lua builds these by appending to the store key
    for stream in ("orders", "{eu}.orders"):
        store = keys.delayed_store(stream)
        assert keys.delayed_bucket(stream, 1_700_000_001_000) == f"{store}:1700000001000"
        assert keys.delayed_sequence(stream) == f"{store}:seq"


def test_class_lanes_share_the_stream_slot() -> None:
    lane = keys.class_lane("orders", "long")
    assert keys.key_slot(lane.encode()) == keys.key_slot(b"orders")
    assert keys.key_slot(keys.delayed_store(lane).encode()) == keys.key_slot(b"orders")
