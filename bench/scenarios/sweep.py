"""Scenario `sweep`: entries/s moved from the delayed store into a stream, lateness, a baseline.

Per layout, on an emptied server:
- drain: `size` entries already due; a Sweeper holding (and renewing) the lease sweeps them,
  1,000 per script, into one stream; entries_per_s = size / time to empty the store;
  server_entries_per_s = size / the time the server spent in the sweep scripts (INFO
  commandstats).
- lateness: `size` entries due over the next few seconds (uniformly, ~100,000 per second, at
  least 2 s), a running Sweeper (lease, sleep-until-due, wake channel) releases them;
  lateness = the entry id's ms (the server's time at XADD) minus the entry's own due time.
  For the bucket layouts this includes the rounding up to the bucket's end (up to bucket_ms).

The `minimal-lua` row is the baseline, measured right before the default layout's drain: the
least a sweep can do (bench/scenarios/sweep_baseline.lua: ZRANGEBYSCORE + XADD + ZREM per
1,000 members of a plain sorted set). `vs_baseline` is each row's drain rate over it, which
holds across machines where absolute rates do not. Every row carries the 1-minute load
average at its start: a loaded machine's rates are not a quiet machine's.

The `xadd-floor` rows are the ceiling of any sweep on this server: a script that only XADDs
the same entries, 1,000 per call (bench/scenarios/sweep_floor.lua), once with the server's
append-only file as configured (gristmill's embedded server: `appendonly yes`) and once with
it switched off for the measurement (`CONFIG SET appendonly no`, then back, waiting for the
rewrite that switching it on starts). Each moved entry costs one XADD, so no layout can sweep
faster than the floor of the same run.

Entries are `{schema_id: 18 characters, payload: 80 bytes}` (the due time is in the payload),
gristmill's common entry. Every wait fails with a message when it stops progressing
(bench.progress), so the bench cannot hang.

    python -m bench sweep [--entries N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import anyio
from redis.asyncio import Redis

from bench.progress import Progress
from bench.scenarios.delayed_memory import flush_sync
from gristmill.timing.delayed import DelayedStore, Layout
from gristmill.timing.leader import Lease
from gristmill.timing.sweeper import Sweeper

if TYPE_CHECKING:
    from collections.abc import Iterator

SCENARIO = "sweep"
TARGET = "bench-sweep"
BASELINE_STORE = "bench-sweep-baseline"
BASELINE = "minimal-lua"
CHUNK = 50_000
DUE_PER_S = 100_000  # arrival rate of due entries in the lateness phase
SCHEMA_ID = b"0123456789abcdef01"  # 18 characters, like the registry's ids
PAYLOAD_BYTES = 80
LAYOUTS: tuple[tuple[str, Layout, int], ...] = (
    ("gristmill", "buckets", 1000),
    ("gristmill-100ms", "buckets", 100),
    ("zset", "zset", 1000),
)
_BASELINE_SOURCE = (Path(__file__).parent / "sweep_baseline.lua").read_text()
_FLOOR_SOURCE = (Path(__file__).parent / "sweep_floor.lua").read_text()
FLOOR = "xadd-floor"
AOF_REWRITE_S = 120.0  # switching the append-only file back on rewrites it: at most this long


def _payload(n: int, due_ms: int) -> bytes:
    return b"%013d%010d" % (due_ms, n) + b"p" * (PAYLOAD_BYTES - 23)


def _entries(size: int, due: Iterator[int]) -> Iterator[tuple[str, list[bytes], int]]:
    for n, due_ms in zip(range(size), due, strict=False):
        yield TARGET, [b"schema_id", SCHEMA_ID, b"payload", _payload(n, due_ms)], due_ms


async def _fill(store: DelayedStore, items: Iterator[tuple[str, list[bytes], int]]) -> None:
    # each call is bounded by the client's socket timeout: a fill cannot hang
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


async def _script_s(redis: Redis) -> float:
    stats = await redis.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec", 0)) / 1e6


async def _drain(redis: Redis, store: DelayedStore, size: int) -> tuple[float, float]:
    """Sweep `size` due entries as the leader does: holding and renewing the lease."""
    now = await _server_ms(redis)
    await _fill(store, _entries(size, iter(range(now - size, now))))
    lease = Lease(redis, "sweeper")
    sweeper = Sweeper(redis, store, lease)
    if not await lease.acquire():
        raise RuntimeError("sweep drain: the sweeper lease is held by someone else")
    await redis.config_resetstat()
    progress = Progress("sweep drain", size)
    started = time.perf_counter()
    async with lease.hold():  # renewed meanwhile: a drain longer than the ttl keeps it
        while sweeper.counts.moved < size:
            await sweeper.sweep_pass()
            progress.check(sweeper.counts.moved, f"{sweeper.counts.refused} batches refused")
    elapsed = time.perf_counter() - started
    if sweeper.counts.moved < size:
        raise RuntimeError(
            f"sweep drain: lost the sweeper lease after {sweeper.counts.moved:,} of {size:,} "
            f"entries ({sweeper.counts.refused} batches refused)"
        )
    script_s = await _script_s(redis)
    if await redis.xlen(TARGET) != size:
        raise RuntimeError(f"sweep drain: {await redis.xlen(TARGET)} entries moved, not {size}")
    return size / elapsed, size / script_s


async def _baseline(redis: Redis, size: int) -> tuple[float, float]:
    """The minimal Lua sweep over a plain sorted set of the same payloads."""
    now = await _server_ms(redis)
    for start in range(0, size, CHUNK):
        pipe = redis.pipeline(transaction=False)
        for n in range(start, min(start + CHUNK, size), 1000):
            due = {
                _payload(m, now - size + m): now - size + m for m in range(n, min(n + 1000, size))
            }
            pipe.zadd(BASELINE_STORE, due)
        await pipe.execute()
    sha = await redis.script_load(_BASELINE_SOURCE)
    await redis.config_resetstat()
    progress = Progress("baseline drain", size)
    moved = 0
    started = time.perf_counter()
    while moved < size:
        moved += int(await redis.evalsha(sha, 2, BASELINE_STORE, TARGET, now, 1000, SCHEMA_ID))
        progress.check(moved)
    elapsed = time.perf_counter() - started
    return size / elapsed, size / await _script_s(redis)


async def _floor(redis: Redis, size: int) -> tuple[float, float]:
    """XADD `size` entries from Lua, 1,000 per call, and nothing else: no sweep is faster."""
    sha = await redis.script_load(_FLOOR_SOURCE)
    await redis.config_resetstat()
    payload = _payload(0, 0)
    started = time.perf_counter()
    for start in range(0, size, 1000):
        await redis.evalsha(sha, 1, TARGET, min(1000, size - start), SCHEMA_ID, payload)
    elapsed = time.perf_counter() - started
    return size / elapsed, size / await _script_s(redis)


async def _appendonly(redis: Redis) -> bool:
    return (await redis.config_get("appendonly")).get("appendonly") == "yes"


async def _floor_without_aof(redis: Redis, size: int) -> tuple[float, float]:
    """The floor with the append-only file off for the measurement, then on again."""
    await redis.config_set("appendonly", "no")
    try:
        return await _floor(redis, size)
    finally:
        await redis.config_set("appendonly", "yes")
        deadline = time.monotonic() + AOF_REWRITE_S
        while True:  # switching it on starts a rewrite; the next phase must not share it
            info = await redis.info("persistence")
            if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sweep floor: the AOF rewrite ran over {AOF_REWRITE_S} s")
            await anyio.sleep(0.1)


async def _lateness(redis: Redis, store: DelayedStore, size: int) -> list[int]:
    span_ms = max(2000, size * 1000 // DUE_PER_S)
    start = await _server_ms(redis) + 3000 + size // 50  # after the fill is done
    await _fill(store, _entries(size, (start + n * span_ms // size for n in range(size))))
    sweeper = Sweeper(redis, store, Lease(redis, "sweeper"))
    progress = Progress("sweep lateness", size)
    waited_until = time.monotonic() + (start + span_ms - await _server_ms(redis)) / 1000
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweeper.run)
        while sweeper.counts.moved < size:
            await anyio.sleep(0.05)
            if time.monotonic() > waited_until:  # entries not yet due are not progress owed
                progress.check(sweeper.counts.moved, f"{sweeper.counts.terms} terms")
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
            late.append(int(entry_id.split(b"-")[0]) - int(fields[b"payload"][:13]))
        last = reply[-1][0].decode()
    return late


def _load() -> float:
    return round(os.getloadavg()[0], 2)


async def measure(url: str, size: int) -> list[dict[str, object]]:
    """One row per layout (drain throughput, lateness) and the baseline row."""
    redis = Redis.from_url(url, socket_timeout=60)
    rows: list[dict[str, object]] = []
    try:
        await flush_sync(redis)
        base_load = _load()  # the baseline right before the default layout's drain
        base_per_s, base_server_per_s = await _baseline(redis, size)
        for system, layout, bucket_ms in LAYOUTS:
            store = DelayedStore(redis, layout=layout, bucket_ms=bucket_ms)
            await flush_sync(redis)
            load = _load()
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
                    "vs_baseline": round(per_s / base_per_s, 3),
                    "server_vs_baseline": round(server_per_s / base_server_per_s, 3),
                    "p50_ms": cuts[49],
                    "p99_ms": cuts[98],
                    "max_ms": late[-1],
                    "early": sum(1 for ms in late if ms < 0),
                    "load_1m": load,
                }
            )
        rows.append(
            {
                "scenario": SCENARIO,
                "system": BASELINE,
                "layout": "plain zset",
                "entries": size,
                "entries_per_s": round(base_per_s),
                "server_entries_per_s": round(base_server_per_s),
                "vs_baseline": 1.0,
                "load_1m": base_load,
                "note": "ZRANGEBYSCORE + XADD + ZREM per 1,000, no lease check, no buckets",
            }
        )
        aof = await _appendonly(redis)
        floors = [(f"appendonly {'yes' if aof else 'no'} (as configured)", _floor)]
        if aof:
            floors.append(("appendonly no, for this row only", _floor_without_aof))
        for note, floor in floors:
            await flush_sync(redis)
            load = _load()
            per_s, server_per_s = await floor(redis, size)
            rows.append(
                {
                    "scenario": SCENARIO,
                    "system": FLOOR if floor is _floor else f"{FLOOR}-no-aof",
                    "layout": "none (XADD only)",
                    "entries": size,
                    "entries_per_s": round(per_s),
                    "server_entries_per_s": round(server_per_s),
                    "vs_baseline": round(per_s / base_per_s, 3),
                    "server_vs_baseline": round(server_per_s / base_server_per_s, 3),
                    "load_1m": load,
                    "note": f"XADD only, 1,000 per script; {note}",
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
