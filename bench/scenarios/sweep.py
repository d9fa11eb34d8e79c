"""Scenario `sweep`: entries/s moved from the delayed store into a stream, and lateness.

Two phases per layout, on an emptied server:
- drain: `size` entries already due; the leader sweeps them (1,000 per script) into one
  stream; entries_per_s = size / time to empty the store; server_entries_per_s = size / the
  time the server spent in the sweep scripts (INFO commandstats).
- lateness: `size` entries due over the next few seconds (uniformly, ~100,000 per second,
  at least 2 s), a running Sweeper (lease, sleep-until-due, wake channel) releases them;
  lateness = the entry id's ms (the server's time at XADD) minus the entry's own due time.
  For the bucket layout this includes the rounding up to the bucket's end (up to bucket_ms).

    python -m bench.scenarios.sweep URL [SIZE]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import TYPE_CHECKING, cast

import anyio
from redis.asyncio import Redis

from bench.scenarios.delayed_memory import flush_sync
from gristmill.timing.delayed import DelayedStore, Layout
from gristmill.timing.leader import Lease
from gristmill.timing.sweeper import Sweeper

if TYPE_CHECKING:
    from collections.abc import Iterator

SCENARIO = "sweep"
TARGET = "bench-sweep"
CHUNK = 50_000
DUE_PER_S = 100_000  # arrival rate of due entries in the lateness phase
LAYOUTS: tuple[tuple[str, Layout, int], ...] = (
    ("gristmill", "buckets", 1000),
    ("gristmill-100ms", "buckets", 100),
    ("zset", "zset", 1000),
)


def _entries(size: int, due: Iterator[int]) -> Iterator[tuple[str, list[bytes], int]]:
    schema_id = b"s" * 16
    filler = b"p" * 36
    for n, due_ms in zip(range(size), due, strict=False):
        fields = [
            b"schema_id",
            schema_id,
            b"payload",
            b"%08d" % n + filler,
            b"h:due",
            b"%d" % due_ms,
        ]
        yield TARGET, fields, due_ms


async def _fill(store: DelayedStore, items: Iterator[tuple[str, list[bytes], int]]) -> None:
    batch: list[tuple[str, list[bytes], int]] = []
    for item in items:
        batch.append(item)
        if len(batch) == CHUNK:
            await store.schedule_many(batch)
            batch = []
    if batch:
        await store.schedule_many(batch)


async def _server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _drain(redis: Redis, store: DelayedStore, size: int) -> tuple[float, float]:
    now = await _server_ms(redis)
    await _fill(store, _entries(size, iter(range(now - size, now))))
    lease = Lease(redis, "sweeper")
    sweeper = Sweeper(redis, store, lease)
    assert await lease.acquire()
    await redis.config_resetstat()
    started = time.perf_counter()
    while sweeper.counts.moved < size:
        await sweeper.sweep_pass()
    elapsed = time.perf_counter() - started
    script_s = (await redis.info("commandstats"))["cmdstat_evalsha"]["usec"] / 1e6
    await lease.release()
    assert await redis.xlen(TARGET) == size
    return size / elapsed, size / script_s


async def _lateness(redis: Redis, store: DelayedStore, size: int) -> list[int]:
    span_ms = max(2000, size * 1000 // DUE_PER_S)
    start = await _server_ms(redis) + 3000 + size // 50  # after the fill is done
    await _fill(store, _entries(size, (start + n * span_ms // size for n in range(size))))
    sweeper = Sweeper(redis, store, Lease(redis, "sweeper"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweeper.run)
        while sweeper.counts.moved < size:  # noqa: ASYNC110 - a counter, not an event
            await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    late: list[int] = []
    last = "-"
    while True:
        reply = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await redis.xrange(TARGET, min=last, count=10_000),
        )
        if last != "-":
            reply = reply[1:]
        if not reply:
            break
        for entry_id, fields in reply:
            late.append(int(entry_id.split(b"-")[0]) - int(fields[b"h:due"]))
        last = reply[-1][0].decode()
    return late


async def measure(url: str, size: int) -> list[dict[str, object]]:
    """One row per layout: drain throughput and lateness percentiles."""
    redis = Redis.from_url(url, socket_timeout=60)
    rows: list[dict[str, object]] = []
    try:
        for system, layout, bucket_ms in LAYOUTS:
            store = DelayedStore(redis, layout=layout, bucket_ms=bucket_ms)
            await flush_sync(redis)
            per_s, server_per_s = await _drain(redis, store, size)
            await flush_sync(redis)
            late = sorted(await _lateness(redis, store, size))
            cuts = statistics.quantiles(late, n=100)
            rows.append(
                {
                    "scenario": SCENARIO,
                    "system": system,
                    "layout": layout,
                    "bucket_ms": bucket_ms if layout == "buckets" else 0,
                    "entries": size,
                    "entries_per_s": round(per_s),
                    # the sweep scripts' own time (INFO commandstats): the server's limit,
                    # free of the client's share of a busy machine
                    "server_entries_per_s": round(server_per_s),
                    "p50_ms": cuts[49],
                    "p99_ms": cuts[98],
                    "max_ms": late[-1],
                    "early": sum(1 for ms in late if ms < 0),
                }
            )
        await flush_sync(redis)
    finally:
        await redis.aclose()
    return rows


def run(url: str, size: int) -> list[dict[str, object]]:
    """The `sweep` rows for `size` entries per phase and layout."""
    return asyncio.run(measure(url, size))


if __name__ == "__main__":
    for row in run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200_000):
        print(row)
