"""Scenario `delayed-memory`: bytes per waiting entry in the delayed store, against the payload.

`size` entries `{schema_id: an 18-character id, payload: N random bytes}` (N = 40, 80, 200),
due uniformly over one hour, are scheduled through the real path (DelayedStore.schedule_many:
one script per 1,000 entries) into one store; the figure is the INFO used_memory delta after
FLUSHALL SYNC, divided by `size`, and `over_payload` is that divided by N: the payload is the
floor, everything above it is the store's cost. The shipped default layout (1 s buckets) is
"gristmill" for the 80-byte payload; the 100 ms buckets and the one-member-per-entry "zset"
layout are measured at 80 bytes too. `schedule_per_s` is the fill rate; `first_tenth_per_s`
and `last_tenth_per_s` show whether it slows as the store grows.

    python -m bench delayed-memory --entries 10000000
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from gristmill.timing.delayed import DelayedStore, Layout

if TYPE_CHECKING:
    from collections.abc import Iterator

SCENARIO = "delayed-memory"
SCHEMA_ID_BYTES = 18  # the registry's ids are 18 characters
SPREAD_MS = 3_600_000  # due times spread over an hour: 3,600 one-second buckets
START_MS = 4_102_444_800_000  # 2100-01-01: far enough ahead that nothing is ever due
CHUNK = 50_000  # entries per schedule_many call
TARGET = "bench-delayed"
# (system, layout, bucket ms, payload bytes)
ROWS: tuple[tuple[str, Layout, int, int], ...] = (
    ("gristmill", "buckets", 1000, 80),
    ("gristmill-40B", "buckets", 1000, 40),
    ("gristmill-200B", "buckets", 1000, 200),
    ("gristmill-100ms", "buckets", 100, 80),
    ("zset", "zset", 1000, 80),
)


def entries(size: int, payload_bytes: int, seed: int = 7) -> Iterator[tuple[str, list[bytes], int]]:
    """`size` distinct entries of `payload_bytes`-byte payloads with their due times."""
    rng = random.Random(seed)
    schema_id = rng.randbytes(SCHEMA_ID_BYTES // 2).hex().encode()
    filler = rng.randbytes(payload_bytes - 8)
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


async def _fill(store: DelayedStore, size: int, payload_bytes: int) -> tuple[float, float, float]:
    """Schedule `size` entries; (entries/s overall, in the first tenth, in the last tenth)."""
    tenth = max(size // 10, 1)
    marks: list[tuple[int, float]] = [(0, time.perf_counter())]
    done = 0
    batch: list[tuple[str, list[bytes], int]] = []
    for item in entries(size, payload_bytes):
        batch.append(item)
        if len(batch) == CHUNK or done + len(batch) == size:
            done += await store.schedule_many(batch)
            batch = []
            marks.append((done, time.perf_counter()))
    if done != size:
        raise RuntimeError(f"{done} entries scheduled, expected {size}")

    def rate(lo: int, hi: int) -> float:
        first = max((m for m in marks if m[0] <= lo), key=lambda m: m[0])
        last = min((m for m in marks if m[0] >= hi), key=lambda m: m[0])
        return (last[0] - first[0]) / max(last[1] - first[1], 1e-9)

    return rate(0, size), rate(0, tenth), rate(size - tenth, size)


async def measure(url: str, size: int) -> list[dict[str, object]]:
    """One row per (layout, payload size), measured one after the other on an emptied server."""
    redis = Redis.from_url(url, socket_timeout=120)
    rows: list[dict[str, object]] = []
    try:
        server = await _server(redis)
        for system, layout, bucket_ms, payload_bytes in ROWS:
            await flush_sync(redis)
            before = await _used_memory(redis)
            store = DelayedStore(redis, layout=layout, bucket_ms=bucket_ms)
            overall, first, last = await _fill(store, size, payload_bytes)
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
                    "payload_bytes": payload_bytes,
                    "bytes_per_entry": round(per_entry, 1),
                    "over_payload": round(per_entry / payload_bytes, 3),
                    "schedule_per_s": round(overall),
                    "first_tenth_per_s": round(first),
                    "last_tenth_per_s": round(last),
                    "server": server,
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)  # a long run shows each row as it ends
        await flush_sync(redis)
    finally:
        await redis.aclose()
    return rows


def run(url: str, size: int) -> list[dict[str, object]]:
    """The `delayed-memory` rows for `size` waiting entries per row (10,000,000 for the docs)."""
    return asyncio.run(measure(url, size))


if __name__ == "__main__":
    for row in run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000):
        print(row)
