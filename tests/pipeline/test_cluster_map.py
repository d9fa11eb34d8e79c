"""The pure cluster pieces: the slot map, node URLs, home slots, outputs of other slots."""

from __future__ import annotations

import pytest

from gristmill import keys
from gristmill.errors import ConfigError
from gristmill.pipeline.cluster import (
    SlotMap,
    check_prefix,
    foreign_outputs,
    home_slot,
    is_redirect,
    node_url,
)

# the shape of a CLUSTER SLOTS reply (hiredis gives bytes), ranges out of order
REPLY = [
    [10923, 16383, [b"127.0.0.1", 7003, b"id3"], [b"127.0.0.1", 7006, b"id6"]],
    [0, 5460, [b"127.0.0.1", 7001, b"id1"], [b"127.0.0.1", 7004, b"id4"]],
    [5461, 10922, [b"10.0.0.2", 7002, b"id2"]],
]


def test_the_slot_map_finds_each_slots_master_at_the_edges_of_its_range() -> None:
    slots = SlotMap.parse(REPLY)
    assert slots.owner(0) == ("127.0.0.1", 7001)
    assert slots.owner(5460) == ("127.0.0.1", 7001)
    assert slots.owner(5461) == ("10.0.0.2", 7002)
    assert slots.owner(10922) == ("10.0.0.2", 7002)
    assert slots.owner(10923) == ("127.0.0.1", 7003)
    assert slots.owner(16383) == ("127.0.0.1", 7003)
    assert slots.masters == {("127.0.0.1", 7001), ("10.0.0.2", 7002), ("127.0.0.1", 7003)}


def test_a_slot_no_master_serves_has_no_owner() -> None:
    slots = SlotMap.parse([[100, 200, [b"127.0.0.1", 7001, b"id1"]]])
    assert slots.owner(99) is None
    assert slots.owner(201) is None
    assert slots.owner(150) == ("127.0.0.1", 7001)
    with pytest.raises(ValueError, match="no slot"):
        SlotMap.parse([])


def test_a_node_url_keeps_the_seeds_scheme_and_credentials_and_drops_the_db() -> None:
    assert node_url("redis://127.0.0.1:7001", ("10.0.0.2", 7002)) == "redis://10.0.0.2:7002"
    assert (
        node_url("rediss://svc:s%40cret@seed:7001/0", ("10.0.0.2", 7002))
        == "rediss://svc:s%40cret@10.0.0.2:7002"
    )


def test_only_redirects_and_a_cluster_in_trouble_ask_for_the_map_again() -> None:
    assert all(map(is_redirect, ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")))
    assert not any(map(is_redirect, ("NOPERM", "WRONGTYPE", "OOM", "NOSCRIPT", "CROSSSLOT")))


def test_a_processor_reads_one_slot_or_is_refused_with_a_fix() -> None:
    lanes = [keys.retry_lane("orders.placed", "g")]
    assert home_slot("p", ["orders.placed", *lanes]) == keys.key_slot(b"orders.placed")
    tagged = ["{shop}.placed", "{shop}.refunded"]
    assert home_slot("p", tagged) == keys.key_slot(b"shop")
    with pytest.raises(ConfigError) as refused:
        home_slot("p", ["orders.placed", "orders.refunded"])
    assert "several hash slots" in str(refused.value)
    assert refused.value.fix is not None
    assert "hash tag" in refused.value.fix


def test_outputs_outside_the_home_slot_are_the_foreign_ones() -> None:
    home = keys.key_slot(b"shop")
    outputs = ["{shop}.valid", "invoices", "{shop}.audit"]
    assert foreign_outputs(home, outputs) == {b"invoices"}
    assert foreign_outputs(keys.key_slot(b"invoices"), ["invoices"]) == frozenset()


def test_a_prefix_without_a_hash_tag_is_refused_on_a_cluster() -> None:
    check_prefix("{gm}:")
    with pytest.raises(ConfigError) as refused:
        check_prefix("gm:")
    assert refused.value.fix is not None
    assert "{gm}:" in refused.value.fix
