"""Subprocess: define Person at runtime and XADD `count` entries of it (schema_id + payload).

Usage: python -m tests.schemas.produce_people URL STREAM COUNT
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from redis.asyncio import Redis

from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry
from tests.schemas.people import PERSON, person_schema


async def produce(url: str, stream: str, count: int) -> bytes:
    person: Any = person_schema()[PERSON]  # built at run time: no typed constructor
    redis = Redis.from_url(url)
    try:
        schema_id = await SchemaCache(SchemaRegistry(redis)).id_for(person.DESCRIPTOR)
        for start in range(0, count, 1000):
            pipe = redis.pipeline(transaction=False)
            for index in range(start, min(start + 1000, count)):
                message = person(
                    name=f"person-{index}",
                    id=index,
                    email=f"p{index}@example.com",
                    phones=[{"number": str(index), "type": index % 3}, {"number": "0"}],
                    address={"street": "Main St", "city": "Springfield"},
                )
                message.tags["teams"].tags.extend(["red", f"t{index % 7}"])
                message.updated_at.seconds = 1_700_000_000 + index
                pipe.xadd(stream, {"schema_id": schema_id, "payload": message.SerializeToString()})
            await pipe.execute()
    finally:
        await redis.aclose()
    return schema_id


if __name__ == "__main__":
    url, stream, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    schema_id = asyncio.run(produce(url, stream, count))
    sys.stdout.write(json.dumps({"schema_id": schema_id.decode()}) + "\n")
