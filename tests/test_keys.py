from __future__ import annotations

from gristmill.keys import (
    dead_lane,
    delayed_bucket,
    delayed_store,
    has_hash_tag,
    key_slot,
    retry_lane,
    schemas,
    slot_prefix,
)


def test_known_slots_match_redis() -> None:
    # values from CLUSTER KEYSLOT on a real server
    assert key_slot(b"foo") == 12182
    assert key_slot(b"{user1000}.following") == key_slot(b"user1000")
    assert key_slot(b"foo{}{bar}") == key_slot(b"foo{}{bar}")  # empty tag: whole key hashed


def test_lanes_share_the_input_slot() -> None:
    for stream in ("orders", "{eu}.orders", "a:b:c"):
        slot = key_slot(stream.encode())
        for lane in (
            retry_lane(stream, "billing"),
            dead_lane(stream, "billing"),
            delayed_store(stream),
            delayed_bucket(stream, 1_700_000_000_000),
        ):
            assert key_slot(lane.encode()) == slot, lane


def test_tagged_names_keep_their_tag() -> None:
    assert has_hash_tag("{eu}.orders")
    assert not has_hash_tag("orders")
    assert not has_hash_tag("odd{}name")
    assert slot_prefix("{eu}.orders") == "{eu}.orders"
    assert slot_prefix("orders") == "{orders}"


def test_global_keys_take_the_prefix() -> None:
    assert schemas("t1:") == "t1:schemas"
    assert schemas() == "gm:schemas"
