"""Every generated bad entry gets exactly its labelled reason from the real decode stage."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from gristmill.envelope import open_fields
from gristmill.errors import DecodeError
from gristmill.failures import reasons
from gristmill.pipeline.decode import decode, resolve_unknown
from gristmill.producer import Publisher
from gristmill.schemas.cache import SchemaCache
from tests.helpers.badinput import KINDS, bad_entries
from tests.pipeline.messages import Node, Order

if TYPE_CHECKING:
    from redis.asyncio import Redis

MAX_ENTRY_BYTES = 16 * 1024


async def reason_of(fields: list[bytes], cache: SchemaCache) -> str | None:
    """The decode stage in miniature, as the processor runs it: None if the entry decodes."""
    try:
        envelope = open_fields(fields, MAX_ENTRY_BYTES)
        failed = await resolve_unknown(cache, {envelope.schema_id})
        if failed:
            return failed[envelope.schema_id].reason
        decode(envelope, cache)
    except DecodeError as exc:
        return exc.reason
    return None


async def test_each_entry_gets_its_labelled_reason(redis: Redis) -> None:
    publisher = Publisher(redis)
    order_id = await publisher.schema_id(Order.DESCRIPTOR)
    node_id = await publisher.schema_id(Node.DESCRIPTOR)
    cache = SchemaCache(publisher.registry)
    entries = bad_entries(
        1000, order_schema_id=order_id, node_schema_id=node_id, max_entry_bytes=MAX_ENTRY_BYTES
    )
    wrong = [
        (entry.kind, entry.reason, got)
        for entry in entries
        if (got := await reason_of(entry.fields, cache)) != entry.reason
    ]
    assert wrong == []
    kinds = Counter(entry.kind for entry in entries)
    assert set(kinds) == set(KINDS)
    assert min(kinds.values()) >= 50  # every kind well represented
    assert {entry.reason for entry in entries} <= reasons.BAD_INPUT
    good = [b"schema_id", order_id, b"payload", Order(id="g", quantity=1).SerializeToString()]
    assert await reason_of(good, cache) is None  # the checker itself can say "fine"


def test_the_same_seed_gives_the_same_entries() -> None:
    def make(seed: int) -> list[list[bytes]]:
        generated = bad_entries(
            50, order_schema_id=b"o", node_schema_id=b"n", max_entry_bytes=MAX_ENTRY_BYTES,
            seed=seed,
        )  # fmt: skip
        return [entry.fields for entry in generated]

    assert make(3) == make(3)
    assert make(3) != make(4)


def test_too_small_a_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entry_bytes"):
        bad_entries(1, order_schema_id=b"o", node_schema_id=b"n", max_entry_bytes=1024)
