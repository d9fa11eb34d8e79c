"""The registry on a real server: ids, versions, idempotence across processes, refusals."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING

import pytest

from gristmill import keys
from gristmill.errors import IncompatibleSchema, InvalidSchema
from gristmill.schemas.build import SchemaBuilder
from gristmill.schemas.compat import Mode
from gristmill.schemas.ids import schema_id_of
from gristmill.schemas.registry import RegisteredSchema, SchemaRegistry
from tests.schemas.people import PERSON, ROOT, person_schema

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer


async def test_register_then_fetch(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    descriptor = person_schema()[PERSON].DESCRIPTOR
    registered = await registry.register(descriptor)
    assert registered == RegisteredSchema(schema_id_of(descriptor), PERSON, 1)
    record = await registry.fetch(registered.schema_id)
    assert record is not None
    assert (record.message_name, record.subject, record.version) == (PERSON, PERSON, 1)
    assert [f.name for f in record.file_set.file] == ["example/people.proto"]
    assert await registry.subjects() == [PERSON]
    assert await registry.versions(PERSON) == [registered.schema_id]


async def test_registering_again_makes_no_new_version(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    first = await registry.register(person_schema()[PERSON].DESCRIPTOR)
    again = await registry.register(person_schema(reverse=True)[PERSON].DESCRIPTOR)
    assert again == first
    assert await redis.llen(keys.subject_versions(PERSON)) == 1
    assert await redis.hlen(keys.schemas()) == 1


async def test_a_changed_schema_gets_a_new_id_and_version(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    first = await registry.register(person_schema()[PERSON].DESCRIPTOR)
    second = await registry.register(person_schema(extra_field=True)[PERSON].DESCRIPTOR)
    assert second.schema_id != first.schema_id
    assert second.version == 2
    assert await registry.versions(PERSON) == [first.schema_id, second.schema_id]
    assert (await registry.version(PERSON)).schema_id == second.schema_id
    assert (await registry.version(PERSON, 1)).schema_id == first.schema_id


def _order(id_type: str, *, drop_note: bool = False) -> SchemaBuilder:
    schema = SchemaBuilder("shop/order.proto", package="shop")
    order = schema.message("Order")
    order.field("id", 1, id_type)
    if drop_note:
        order.reserve(2)
    else:
        order.field("note", 2, "string")
    return schema


async def test_an_incompatible_version_is_refused_with_field_and_rule(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    await registry.register(_order("int64").build()["shop.Order"].DESCRIPTOR)
    with pytest.raises(IncompatibleSchema, match=r"shop\.Order\.id \(field 1\): type_change"):
        await registry.register(_order("string").build()["shop.Order"].DESCRIPTOR)
    assert await redis.llen(keys.subject_versions("shop.Order")) == 1
    accepted = await registry.register(
        _order("int64", drop_note=True).build()["shop.Order"].DESCRIPTOR
    )
    assert accepted.version == 2


async def test_mode_none_accepts_anything(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    await registry.set_compatibility("shop.Order", Mode.NONE)
    await registry.register(_order("int64").build()["shop.Order"].DESCRIPTOR)
    changed = await registry.register(_order("string").build()["shop.Order"].DESCRIPTOR)
    assert changed.version == 2
    assert await registry.compatibility("shop.Order") is Mode.NONE


async def test_the_same_schema_under_two_subjects_keeps_one_record(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    descriptor = person_schema()[PERSON].DESCRIPTOR
    first = await registry.register(descriptor)
    other = await registry.register(descriptor, subject="people-v1")
    assert (other.schema_id, other.version) == (first.schema_id, 1)
    assert await redis.hlen(keys.schemas()) == 1
    assert await registry.subjects() == sorted([PERSON, "people-v1"])


async def test_a_bad_subject_is_refused(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    with pytest.raises(InvalidSchema, match="control character"):
        await registry.register(person_schema()[PERSON].DESCRIPTOR, subject="a\nb")


async def test_fetch_of_an_unknown_or_malformed_id_is_none(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    assert await registry.fetch("s1AAAAAAAAAAAAAAAA") is None
    assert await registry.fetch("not an id") is None
    assert registry.fetches == 1  # the malformed id costs no round trip


async def test_a_record_stored_under_the_wrong_id_is_refused(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    real = await registry.register(person_schema()[PERSON].DESCRIPTOR)
    record = await redis.hget(keys.schemas(), real.schema_id)
    await redis.hset(keys.schemas(), "s1AAAAAAAAAAAAAAAA", record)
    with pytest.raises(InvalidSchema, match="does not hash to its id"):
        await registry.fetch("s1AAAAAAAAAAAAAAAA")


async def test_a_garbage_record_is_refused(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    await redis.hset(keys.schemas(), "s1AAAAAAAAAAAAAAAA", b"\xff\xff\xff")
    with pytest.raises(InvalidSchema, match="does not parse"):
        await registry.fetch("s1AAAAAAAAAAAAAAAA")


_REGISTER = """
import asyncio, json, sys
from redis.asyncio import Redis
from gristmill.schemas.registry import SchemaRegistry
from tests.schemas.people import PERSON, ROOT, person_schema

async def main() -> None:
    descriptor = person_schema(reverse=sys.argv[2] == "reverse")[PERSON].DESCRIPTOR
    redis = Redis.from_url(sys.argv[1])
    sys.stdin.readline()  # both processes start registering at the same moment
    registered = await SchemaRegistry(redis).register(descriptor)
    sys.stdout.write(json.dumps([registered.schema_id, registered.version]) + "\\n")
    await redis.aclose()

asyncio.run(main())
"""


@pytest.mark.slow
async def test_two_processes_registering_at_once_make_one_version(
    redis: Redis, server: EmbeddedServer
) -> None:
    processes = []
    for order in ("forward", "reverse"):
        argv = [sys.executable, "-c", _REGISTER, server.url, order]
        pipe = asyncio.subprocess.PIPE
        processes.append(
            await asyncio.create_subprocess_exec(*argv, stdin=pipe, stdout=pipe, cwd=ROOT)
        )
    await asyncio.sleep(1.0)  # let both import and connect before the starting signal
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    results = [json.loads((await process.communicate())[0]) for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    assert results[0] == results[1]
    assert results[0][1] == 1
    assert await redis.llen(keys.subject_versions(PERSON)) == 1
