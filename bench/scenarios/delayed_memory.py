"""Scenario `delayed-memory`: bytes per waiting entry in the delayed store, per layout.

`size` entries of 80 packed bytes each (schema id 16 B + payload 58 B + msgpack framing),
due uniformly over one hour, are scheduled through the real path (DelayedStore.schedule_many:
one script per 1,000 entries) into one store; the figure is the INFO used_memory delta after
FLUSHALL SYNC, divided by `size`. The shipped default layout is reported as "gristmill", the
plain one-member-per-entry layout as "zset".

    python -m bench.scenarios.delayed_memory URL [SIZE]
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from gristmill.timing.delayed import DelayedStore, Layout
from gristmill.timing.packing import pack_entry

if TYPE_CHECKING:
    from collections.abc import Iterator

SCENARIO = "delayed-memory"
RAW_BYTES = 80  # one packed entry: what the store must keep, whatever the layout
SPREAD_MS = 3_600_000  # due times spread over an hour: 3,600 one-second buckets
START_MS = 4_102_444_800_000  # 2100-01-01: far enough ahead that nothing is ever due
CHUNK = 50_000  # entries per schedule_many call
TARGET = "bench-delayed"
LAYOUTS: tuple[tuple[str, Layout, int], ...] = (
    ("gristmill", "buckets", 1000),
    ("gristmill-100ms", "buckets", 100),
    ("zset", "zset", 1000),
)


def entries(size: int, seed: int = 7) -> Iterator[tuple[str, list[bytes], int]]:
    """`size` distinct 80-byte entries with their due times."""
    rng = random.Random(seed)
    schema_id = rng.randbytes(16)
    filler = rng.randbytes(50)
    for n in range(size):
        payload = n.to_bytes(8, "big") + filler  # distinct, incompressible like protobuf
        yield (
            TARGET,
            [b"schema_id", schema_id, b"payload", payload],
            START_MS + rng.randrange(SPREAD_MS),
        )


async def flush_sync(redis: Redis) -> None:
    """FLUSHALL SYNC: redis-py's flushall() sends a bare FLUSHALL, which Valkey 8 frees lazily
    (lazyfree-lazy-user-flush yes), so the memory of the data before would skew the delta."""
    await redis.execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]


async def _used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def _server(redis: Redis) -> str:
    info = await redis.info("server")
    memory = await redis.info("memory")
    name = "valkey" if "valkey_version" in info else "redis"
    version = info.get("valkey_version", info.get("redis_version"))
    return f"{name} {version} ({memory.get('mem_allocator', '?')})"


async def measure(url: str, size: int) -> list[dict[str, object]]:
    """One row per layout, measured one after the other on an emptied server."""
    assert len(pack_entry(next(entries(1))[1])) == RAW_BYTES
    redis = Redis.from_url(url, socket_timeout=120)
    rows: list[dict[str, object]] = []
    try:
        server = await _server(redis)
        for system, layout, bucket_ms in LAYOUTS:
            await flush_sync(redis)
            before = await _used_memory(redis)
            store = DelayedStore(redis, layout=layout, bucket_ms=bucket_ms)
            started = time.perf_counter()
            batch: list[tuple[str, list[bytes], int]] = []
            for item in entries(size):
                batch.append(item)
                if len(batch) == CHUNK:
                    await store.schedule_many(batch)
                    batch = []
            if batch:
                await store.schedule_many(batch)
            elapsed = time.perf_counter() - started
            used = await _used_memory(redis) - before
            stored = (await store.stats(TARGET)).entries
            if stored != size:
                raise RuntimeError(f"{system}: {stored} entries stored, expected {size}")
            per_entry = used / size
            rows.append(
                {
                    "scenario": SCENARIO,
                    "system": system,
                    "layout": layout,
                    "bucket_ms": bucket_ms if layout == "buckets" else 0,
                    "entries": size,
                    "raw_bytes": RAW_BYTES,
                    "bytes_per_entry": round(per_entry, 1),
                    "ratio_to_raw": round(per_entry / RAW_BYTES, 3),
                    "schedule_per_s": round(size / elapsed),
                    "server": server,
                }
            )
        await flush_sync(redis)
    finally:
        await redis.aclose()
    return rows


def run(url: str, size: int) -> list[dict[str, object]]:
    """The `delayed-memory` rows for `size` waiting entries (the issue asks for 10,000,000)."""
    return asyncio.run(measure(url, size))


if __name__ == "__main__":
    for row in run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000):
        print(row)
