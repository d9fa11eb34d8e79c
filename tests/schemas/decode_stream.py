"""Subprocess: decode every entry of a stream through the registry, knowing no schema.

Imports nothing that defines a message; prints what it decoded and how often it fetched.
Usage: python -m tests.schemas.decode_stream URL STREAM
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from google.protobuf import descriptor_pool
from redis.asyncio import Redis

from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry


async def decode_all(url: str, stream: str) -> dict[str, Any]:
    redis = Redis.from_url(url)
    registry = SchemaRegistry(redis)
    cache = SchemaCache(registry)
    decoded = id_sum = phones = tags = 0
    names: set[str] = set()
    last = "-"
    try:
        while True:
            entries: Any = await redis.xrange(stream, min=last, count=1000)
            if last != "-":
                entries = entries[1:]  # XRANGE's min is inclusive
            if not entries:
                break
            for entry_id, fields in entries:
                last = entry_id.decode()
                message_class = cache.get(fields[b"schema_id"]) or await cache.resolve(
                    fields[b"schema_id"]
                )
                message: Any = message_class.FromString(fields[b"payload"])
                decoded += 1
                names.add(message.DESCRIPTOR.full_name)
                id_sum += message.id
                phones += len(message.phones)
                tags += len(message.tags["teams"].tags)
    finally:
        await redis.aclose()
    try:
        descriptor_pool.Default().FindMessageTypeByName("example.people.Person")
        in_default_pool = True
    except KeyError:
        in_default_pool = False
    return {
        "decoded": decoded,
        "names": sorted(names),
        "id_sum": id_sum,
        "phones": phones,
        "tags": tags,
        "registry_fetches": registry.fetches,
        "cache": cache.stats(),
        "knew_people": any(name.startswith("tests.schemas.people") for name in sys.modules),
        "in_default_pool": in_default_pool,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(asyncio.run(decode_all(sys.argv[1], sys.argv[2]))) + "\n")
