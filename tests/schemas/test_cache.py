"""The decode cache: one fetch per id however many ask, a bound, a negative cache, counters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gristmill import keys
from gristmill.clock import FakeClock
from gristmill.errors import InvalidSchema, SchemaNotFound
from gristmill.schemas.build import SchemaBuilder
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.ids import schema_id_of
from gristmill.schemas.registry import SchemaRegistry
from gristmill.scripts import load
from tests.schemas.commands import command_calls
from tests.schemas.people import PERSON, person_schema

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from google.protobuf.message import Message

    from gristmill.embedded import EmbeddedServer

UNKNOWN = b"s1AAAAAAAAAAAAAAAA"


def _numbered(index: int) -> SchemaBuilder:
    schema = SchemaBuilder(f"n/m{index}.proto", package="n")
    schema.message(f"M{index}").field("value", 1, "int64")
    return schema


async def test_a_thousand_concurrent_resolves_fetch_once(redis: Redis) -> None:
    person: Any = person_schema()[PERSON]  # built at run time: no typed constructor
    schema_id = (await SchemaRegistry(redis).register(person.DESCRIPTOR)).schema_id.encode()
    registry = SchemaRegistry(redis)
    cache = SchemaCache(registry)
    hgets_before = await command_calls(redis, "hget")
    resolved: list[type[Message]] = []

    async def resolve() -> None:
        resolved.append(await cache.resolve(schema_id))

    async with anyio.create_task_group() as group:
        for _ in range(1000):
            group.start_soon(resolve)
    assert len(resolved) == 1000
    assert len({id(cls) for cls in resolved}) == 1
    assert (cache.fetches, registry.fetches) == (1, 1)
    assert await command_calls(redis, "hget") - hgets_before == 1
    decoded = resolved[0].FromString(person(name="Ada", id=7).SerializeToString())
    assert (decoded.DESCRIPTOR.full_name, decoded.name, decoded.id) == (PERSON, "Ada", 7)  # type: ignore[attr-defined]
    assert resolved[0].DESCRIPTOR is not person.DESCRIPTOR  # built in a pool of its own


async def test_get_counts_hits_and_misses(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    schema_id = (await registry.register(person_schema()[PERSON].DESCRIPTOR)).schema_id.encode()
    cache = SchemaCache(registry)
    assert cache.get(schema_id) is None
    await cache.resolve(schema_id)
    assert cache.get(schema_id) is not None
    assert cache.get(schema_id) is not None
    assert (cache.hits, cache.misses) == (2, 1)
    assert cache.stats() == {
        "hits": 2, "misses": 1, "fetches": 1, "evictions": 0, "entries": 1,
        "negative_entries": 0, "rechecks": 0,
    }  # fmt: skip


async def test_the_cache_is_bounded(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    ids = [
        (await registry.register(_numbered(i).build()[f"n.M{i}"].DESCRIPTOR)).schema_id.encode()
        for i in range(3)
    ]
    cache = SchemaCache(registry, max_entries=2)
    for schema_id in ids:
        await cache.resolve(schema_id)
    assert cache.stats()["entries"] == 2
    assert cache.evictions == 1
    assert cache.get(ids[0]) is None  # the oldest went first
    assert cache.get(ids[2]) is not None
    await cache.resolve(ids[0])
    assert cache.fetches == 4


async def test_unknown_ids_are_remembered_for_the_negative_ttl(redis: Redis) -> None:
    clock = FakeClock()
    cache = SchemaCache(SchemaRegistry(redis), negative_ttl=5.0, clock=clock)
    for _ in range(3):
        with pytest.raises(SchemaNotFound) as raised:
            await cache.resolve(UNKNOWN)
        assert raised.value.reason == "unknown_schema"
    assert cache.fetches == 1
    assert cache.stats()["negative_entries"] == 1
    clock.advance(5.1)
    with pytest.raises(SchemaNotFound):
        await cache.resolve(UNKNOWN)
    assert cache.fetches == 2


async def test_an_id_registered_after_a_miss_resolves_once_the_ttl_passed(redis: Redis) -> None:
    clock = FakeClock()
    registry = SchemaRegistry(redis)
    cache = SchemaCache(registry, negative_ttl=5.0, clock=clock)
    descriptor = person_schema()[PERSON].DESCRIPTOR
    schema_id = schema_id_of(descriptor).encode()
    with pytest.raises(SchemaNotFound):
        await cache.resolve(schema_id)
    await registry.register(descriptor)
    clock.advance(6)
    assert (await cache.resolve(schema_id)).DESCRIPTOR.full_name == PERSON


async def test_a_registration_ends_a_remembered_miss_at_once(redis: Redis) -> None:
    clock = FakeClock()  # never advanced: the negative ttl does not run out
    cache = SchemaCache(SchemaRegistry(redis), negative_ttl=5.0, clock=clock)
    descriptor = person_schema()[PERSON].DESCRIPTOR
    schema_id = schema_id_of(descriptor).encode()
    with pytest.raises(SchemaNotFound):
        await cache.resolve(schema_id)
    await cache.recheck_misses([schema_id])  # nothing registered since: still a miss
    with pytest.raises(SchemaNotFound):
        await cache.resolve(schema_id)
    assert (cache.fetches, cache.rechecks) == (1, 1)

    await SchemaRegistry(redis).register(descriptor)  # another process's registry
    await cache.recheck_misses([schema_id])
    assert (await cache.resolve(schema_id)).DESCRIPTOR.full_name == PERSON
    assert (cache.fetches, cache.rechecks) == (2, 2)


async def test_a_recheck_costs_nothing_without_a_remembered_miss(redis: Redis) -> None:
    await redis.hset(keys.schemas(), UNKNOWN.decode(), b"\x0a\x03abc")  # broken: stays broken
    cache = SchemaCache(SchemaRegistry(redis))
    with pytest.raises(InvalidSchema):
        await cache.resolve(UNKNOWN)
    gets_before = await command_calls(redis, "get")
    await cache.recheck_misses([UNKNOWN, b"s1BBBBBBBBBBBBBBBB"])
    assert await command_calls(redis, "get") == gets_before
    assert cache.rechecks == 0


async def test_a_broken_record_is_invalid_and_remembered(redis: Redis) -> None:
    await redis.hset(keys.schemas(), UNKNOWN.decode(), b"\x0a\x03abc")
    cache = SchemaCache(SchemaRegistry(redis))
    for _ in range(2):
        with pytest.raises(InvalidSchema) as raised:
            await cache.resolve(UNKNOWN)
        assert raised.value.reason == "schema_invalid"
    assert cache.fetches == 1


async def test_a_non_ascii_id_is_unknown_without_a_round_trip(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    cache = SchemaCache(registry)
    with pytest.raises(SchemaNotFound):
        await cache.resolve(b"\xff" * 18)
    assert registry.fetches == 0


async def test_id_for_registers_once_and_needs_no_fetch_to_decode(redis: Redis) -> None:
    registry = SchemaRegistry(redis)
    cache = SchemaCache(registry)
    descriptor = person_schema()[PERSON].DESCRIPTOR
    assert cache.cached_id(descriptor) is None
    await redis.script_load(load("register_schema").source)  # no NOSCRIPT retry in the count
    scripts_before = await command_calls(redis, "evalsha")
    found: list[bytes] = []

    async def id_for() -> None:
        found.append(await cache.id_for(descriptor))

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(id_for)
    assert len(set(found)) == 1
    assert await command_calls(redis, "evalsha") - scripts_before == 1
    assert cache.cached_id(descriptor) == found[0]
    assert cache.get(found[0]) is not None
    assert registry.fetches == 0


async def test_max_entries_must_be_positive(redis: Redis) -> None:
    with pytest.raises(ValueError, match="max_entries"):
        SchemaCache(SchemaRegistry(redis), max_entries=0)


async def test_an_unreachable_server_fails_every_waiter_once_and_is_not_remembered() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    cache = SchemaCache(SchemaRegistry(unreachable))
    failures: list[BaseException] = []

    async def resolve() -> None:
        try:
            await cache.resolve(UNKNOWN)
        except RedisConnectionError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(resolve)
    assert len(failures) == 50
    assert cache.fetches == 1
    assert cache.stats()["negative_entries"] == 0
    with pytest.raises(RedisConnectionError):
        await cache.resolve(UNKNOWN)
    assert cache.fetches == 2
    await unreachable.aclose()


@pytest.mark.fault
async def test_a_cancelled_fetch_hands_over_to_a_waiter(
    redis: Redis, server: EmbeddedServer
) -> None:
    registry = SchemaRegistry(redis)
    schema_id = (await registry.register(person_schema().descriptor(PERSON))).schema_id.encode()
    fetching = Redis.from_url(server.url)
    cache = SchemaCache(SchemaRegistry(fetching))
    resolved: list[str] = []

    async def resolve() -> None:
        resolved.append((await cache.resolve(schema_id)).DESCRIPTOR.full_name)

    await redis.client_pause(400, all=True)  # the first HGET hangs until the pause ends
    first = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(_cancellable, first, resolve)
        await anyio.sleep(0.05)
        for _ in range(10):
            group.start_soon(resolve)
        await anyio.sleep(0.05)
        first.cancel()
    assert resolved == [PERSON] * 10
    assert cache.fetches == 2  # the cancelled one, then one waiter for all the others
    await fetching.aclose()


async def _cancellable(scope: anyio.CancelScope, work: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await work()


async def test_the_negative_cache_is_bounded_too(redis: Redis) -> None:
    cache = SchemaCache(SchemaRegistry(redis), max_entries=3)
    made_up = [b"s1AAAAAAAAAAAAAAA" + bytes([ord("A") + i]) for i in range(5)]
    for schema_id in made_up:
        with pytest.raises(SchemaNotFound):
            await cache.resolve(schema_id)
    assert cache.stats()["negative_entries"] == 3
    with pytest.raises(SchemaNotFound):
        await cache.resolve(made_up[0])  # forgotten, so fetched again
    assert cache.fetches == 6
