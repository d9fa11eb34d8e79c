"""Bad entries for fuzz tests, each labelled with the dead-letter reason it must get (pure).

    entries = bad_entries(1000, order_schema_id=..., node_schema_id=..., max_entry_bytes=1 << 16)
    for entry in entries:
        await redis.execute_command("XADD", "orders", "*", *entry.fields)
    ... every entry.reason must show up in the dead lane, once per entry

`order_schema_id` is the registered id of tests.pipeline.messages.Order and `node_schema_id`
that of Node (nested to any depth). Each kind makes its reason certain, not likely: random
payload bytes start with an invalid wire type, a truncated payload is cut inside a field. Keep
`max_entry_bytes` small (tens of KB): the oversize entries are that big, and deep nesting of up
to 2,000 levels must stay under it (about 6 KB).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import zstandard

from gristmill.failures import reasons
from tests.pipeline.messages import Order, nested_payload

if TYPE_CHECKING:
    from collections.abc import Callable

_MAX_DEPTH_BYTES = 8 * 1024


@dataclass(frozen=True, slots=True)
class _Ids:
    order: bytes
    node: bytes
    max_entry_bytes: int


@dataclass(frozen=True, slots=True)
class BadEntry:
    """Entry fields that must be dead-lettered with `reason`; `kind` says how they are bad."""

    kind: str
    fields: list[bytes]
    reason: str


def _random_fields(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    names = [rng.randbytes(rng.randint(1, 12)) for _ in range(rng.randint(1, 6))]
    fields = [
        item
        for name in names
        if name != b"schema_id"
        for item in (name, rng.randbytes(rng.randint(0, 40)))
    ]
    return fields or [b"junk", b""], reasons.MISSING_FIELD


def _no_payload(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    return [b"schema_id", ids.order, b"key", rng.randbytes(4)], reasons.MISSING_FIELD


def _bad_attempt(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    payload = Order(id="a", sku="b", quantity=1).SerializeToString()
    return [b"schema_id", ids.order, b"payload", payload, b"attempt", b"x" + rng.randbytes(2)], (
        reasons.MISSING_FIELD
    )


def _unknown_schema(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    schema_id = b"unknown-" + rng.randbytes(8).hex().encode()
    return [b"schema_id", schema_id, b"payload", rng.randbytes(rng.randint(0, 64))], (
        reasons.UNKNOWN_SCHEMA
    )


def _invalid_wire_type(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    # wire types 6 and 7 do not exist: no parser accepts a tag that carries one
    tag = (rng.randint(1, 15) << 3) | rng.choice((6, 7))
    return [
        b"schema_id",
        ids.order,
        b"payload",
        bytes([tag]) + rng.randbytes(rng.randint(0, 200)),
    ], (reasons.DECODE_ERROR)


def _truncated(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    order_id = "o-" + rng.randbytes(rng.randint(4, 40)).hex()
    payload = Order(id=order_id, sku="tea", quantity=rng.randint(1, 99)).SerializeToString()
    cut = rng.randint(2, 1 + len(order_id) - 1)  # inside the id's bytes: a length it cannot meet
    return [b"schema_id", ids.order, b"payload", payload[:cut]], reasons.DECODE_ERROR


def _too_deep(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    return [b"schema_id", ids.node, b"payload", nested_payload(rng.randint(101, 2000))], (
        reasons.DECODE_DEPTH
    )


def _oversize(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    payload = rng.randbytes(ids.max_entry_bytes + rng.randint(1, 1000))
    return [b"schema_id", ids.order, b"payload", payload], reasons.OVERSIZE


def _zstd_bomb(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    inflated = bytes(ids.max_entry_bytes + rng.randint(1, 1000))  # tiny compressed, huge inflated
    payload = zstandard.ZstdCompressor().compress(inflated)
    return [b"schema_id", ids.order, b"payload", payload, b"encoding", b"zstd"], reasons.OVERSIZE


def _unknown_encoding(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    payload = zlib.compress(Order(id="z", sku="tea", quantity=1).SerializeToString())
    encoding = rng.choice((b"gzip", b"lz4", b"br", rng.randbytes(3)))
    return [b"schema_id", ids.order, b"payload", payload, b"encoding", encoding], (
        reasons.BAD_ENCODING
    )


def _corrupt_zstd(rng: random.Random, ids: _Ids) -> tuple[list[bytes], str]:
    # a real frame cut short: its header may declare only a small size, so never `oversize`
    frame = zstandard.ZstdCompressor().compress(rng.randbytes(rng.randint(20, 200)))
    payload = frame[: rng.randint(4, len(frame) - 1)]
    return [b"schema_id", ids.order, b"payload", payload, b"encoding", b"zstd"], (
        reasons.BAD_ENCODING
    )


KINDS: dict[str, Callable[[random.Random, _Ids], tuple[list[bytes], str]]] = {
    "random_fields": _random_fields,
    "no_payload": _no_payload,
    "bad_attempt": _bad_attempt,
    "unknown_schema": _unknown_schema,
    "invalid_wire_type": _invalid_wire_type,
    "truncated": _truncated,
    "too_deep": _too_deep,
    "oversize": _oversize,
    "zstd_bomb": _zstd_bomb,
    "unknown_encoding": _unknown_encoding,
    "corrupt_zstd": _corrupt_zstd,
}


def bad_entries(
    count: int,
    *,
    order_schema_id: bytes,
    node_schema_id: bytes,
    max_entry_bytes: int,
    seed: int = 0,
) -> list[BadEntry]:
    """`count` bad entries, every kind in turn then at random (seeded: the same list each run)."""
    if max_entry_bytes < _MAX_DEPTH_BYTES:
        raise ValueError(f"max_entry_bytes must be >= {_MAX_DEPTH_BYTES} for the deep entries")
    rng = random.Random(seed)
    ids = _Ids(order_schema_id, node_schema_id, max_entry_bytes)
    names = list(KINDS)
    entries = []
    for index in range(count):
        kind = names[index] if index < len(names) else rng.choice(names)
        fields, reason = KINDS[kind](rng, ids)
        entries.append(BadEntry(kind, fields, reason))
    return entries
