"""Scenario `decode`: Person messages decoded per second through gristmill's schema cache.

`size` Person entries (best of 3 interleaved rounds) (schemas/person.proto: nested phones with an enum, an address, a map of
lists, a Timestamp; ~150 bytes each) are XADDed with fields schema_id + payload, then read
back with XRANGE (1,000 per call). Rows:
- `gristmill`: a fresh SchemaCache per run; per entry `cache.get(schema_id)` (resolving the
  id from the registry the first time: one fetch) then `FromString`; decode loop only.
  `first_resolve_ms`: what that first resolve costs (HGET, id check, pool build).
- `protobuf-direct` (baseline): the class known in advance, `FromString` per entry; the
  difference to `gristmill` is the cost of looking the class up by schema id.
- `gristmill-from-stream`: XRANGE reads plus the cache decode, as a consumer would see it.

    python -m bench.scenarios.decode URL [SIZE]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.protofiles import load_proto
from gristmill.schemas.registry import SchemaRegistry

if TYPE_CHECKING:
    from google.protobuf.message import Message

SCENARIO = "decode"
STREAM = "bench-decode"
PERSON = "example.people.Person"
PERSON_PROTO = Path(__file__).resolve().parents[2] / "schemas" / "person.proto"
CHUNK = 1000
ROUNDS = 3


def _keep_best(best: dict[str, float], system: str, seconds: float) -> None:
    best[system] = min(seconds, best.get(system, seconds))


def person(index: int, person_class: Any) -> bytes:
    """One realistic Person, encoded."""
    message: Any = person_class(
        name=f"person-{index}",
        id=index,
        email=f"p{index}@example.com",
        phones=[{"number": f"+1555{index:07d}", "type": index % 3}, {"number": "0"}],
        address={"street": "1 Main St", "city": "Springfield", "country": "US"},
    )
    message.tags["teams"].tags.extend(["red", f"t{index % 7}"])
    message.updated_at.seconds = 1_700_000_000 + index
    data: bytes = message.SerializeToString()
    return data


async def _fill(redis: Redis, size: int, schema_id: bytes, person_class: type[Message]) -> None:
    for start in range(0, size, CHUNK):
        pipe = redis.pipeline(transaction=False)
        for index in range(start, min(start + CHUNK, size)):
            pipe.xadd(STREAM, {"schema_id": schema_id, "payload": person(index, person_class)})
        await pipe.execute()


async def _read_all(redis: Redis) -> list[tuple[bytes, bytes]]:
    entries: list[tuple[bytes, bytes]] = []
    last = "-"
    while True:
        batch: Any = await redis.xrange(STREAM, min=last, count=CHUNK + 1)
        fresh = batch if last == "-" else batch[1:]  # XRANGE's min is inclusive
        if not fresh:
            return entries
        entries.extend((fields[b"schema_id"], fields[b"payload"]) for _, fields in fresh)
        last = batch[-1][0].decode()


async def _decode_through_cache(cache: SchemaCache, entries: list[tuple[bytes, bytes]]) -> int:
    decoded = 0
    for schema_id, payload in entries:
        message_class = cache.get(schema_id) or await cache.resolve(schema_id)
        message_class.FromString(payload)
        decoded += 1
    return decoded


async def measure(url: str, size: int) -> list[dict[str, object]]:
    """Fill the stream, then time each way of decoding it."""
    redis = Redis.from_url(url)
    rows: list[dict[str, object]] = []
    try:
        await redis.delete(STREAM)
        built = load_proto(PERSON_PROTO)
        person_class = built[PERSON]
        registry = SchemaRegistry(redis)
        schema_id = (await registry.register(built.descriptor(PERSON))).schema_id.encode()
        await _fill(redis, size, schema_id, person_class)
        entries = await _read_all(redis)
        payload_bytes = sum(len(payload) for _, payload in entries) // max(len(entries), 1)

        def row(system: str, seconds: float, **extra: object) -> dict[str, object]:
            return {"scenario": SCENARIO, "system": system, "messages": len(entries),
                    "payload_bytes": payload_bytes, "msgs_per_s": round(len(entries) / seconds),
                    "us_per_msg": round(seconds / len(entries) * 1e6, 3), **extra}  # fmt: skip

        best: dict[str, float] = {}
        fetches: dict[str, int] = {}
        for _ in range(ROUNDS):  # interleaved rounds, best of each: the machine is shared
            cache = SchemaCache(SchemaRegistry(redis))
            started = time.perf_counter()
            await cache.resolve(schema_id)  # fetch, verify the id, build the pool: once
            _keep_best(best, "first-resolve", time.perf_counter() - started)
            cache = SchemaCache(SchemaRegistry(redis))
            started = time.perf_counter()
            await _decode_through_cache(cache, entries)
            _keep_best(best, "gristmill", time.perf_counter() - started)
            fetches["gristmill"] = cache.fetches

            started = time.perf_counter()
            for _, payload in entries:
                person_class.FromString(payload)
            _keep_best(best, "protobuf-direct", time.perf_counter() - started)

            cache = SchemaCache(SchemaRegistry(redis))
            started = time.perf_counter()
            await _decode_through_cache(cache, await _read_all(redis))
            _keep_best(best, "gristmill-from-stream", time.perf_counter() - started)
            fetches["gristmill-from-stream"] = cache.fetches
        first_resolve_ms = round(best.pop("first-resolve") * 1000, 3)
        for system, seconds in best.items():
            extra: dict[str, object] = {}
            if system in fetches:
                extra = {"fetches": fetches[system], "first_resolve_ms": first_resolve_ms}
            rows.append(row(system, seconds, **extra))
        await redis.delete(STREAM)
    finally:
        await redis.aclose()
    return rows


def run(url: str, size: int) -> list[dict[str, object]]:
    """The `decode` rows for `size` Person entries (best of 3 interleaved rounds)."""
    return asyncio.run(measure(url, size))


if __name__ == "__main__":
    for result in run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200_000):
        print(result)
