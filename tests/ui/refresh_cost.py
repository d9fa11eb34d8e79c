"""What one dashboard refresh costs the server: commands and round trips, counted by the server.

Commands are the sum of INFO commandstats calls; round trips are INFO stats
`total_reads_processed` (one read event per request the client sends in one write, a whole
pipeline included), both as deltas around one `Dashboard.refresh()`, less what the INFO calls
themselves add (measured with nothing in between). Run it for figures on this machine:

    .venv/bin/python -m tests.ui.refresh_cost       # 100 streams x 3 groups, 20 refreshes
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from gristmill import keys
from gristmill.embedded import EmbeddedServer
from gristmill.settings import load_settings
from gristmill.ui.gather import Dashboard

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


@dataclass(frozen=True, slots=True)
class Cost:
    """One refresh as the server saw it, and how long it took the dashboard."""

    commands: int
    round_trips: int
    seconds: float


async def fill(redis: Redis, streams: int, groups: int) -> None:
    """`streams` streams of 5 entries, each read by `groups` groups, with a dead letter each."""
    pipe = redis.pipeline(transaction=False)
    for s in range(streams):
        name = f"load.{s:03d}"
        for n in range(5):
            pipe.xadd(name, {"n": n})
        for g in range(groups):
            pipe.xgroup_create(name, f"group-{g}", id="0")
        pipe.xadd(keys.dead_lane(name, "group-0"), {"dl:reason": "handler_error"})
    await pipe.execute()


async def _counters(redis: Redis) -> tuple[int, int]:
    stats = await redis.info("commandstats")
    commands = sum(int(value["calls"]) for value in stats.values())
    reads = int((await redis.info("stats"))["total_reads_processed"])
    return commands, reads


async def counted(redis: Redis, work: Callable[[], Awaitable[object]]) -> Cost:
    """The commands and round trips the server saw while `work` ran (INFO's own removed)."""
    before = await _counters(redis)
    idle = await _counters(redis)  # what the INFO calls alone add between two readings
    overhead = (idle[0] - before[0], idle[1] - before[1])
    started = time.perf_counter()
    await work()
    seconds = time.perf_counter() - started
    after = await _counters(redis)
    return Cost(after[0] - idle[0] - overhead[0], after[1] - idle[1] - overhead[1], seconds)


async def refresh_cost(redis: Redis, dashboard: Dashboard) -> Cost:
    """One `refresh`, counted."""
    return await counted(redis, dashboard.refresh)


async def _main(streams: int, groups: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as where, EmbeddedServer.start(Path(where)) as server:
        async with Redis.from_url(server.url) as redis:
            await fill(redis, streams, groups)
            dashboard = Dashboard(redis, load_settings())
            await dashboard.refresh()  # connections open, scripts and caches warm
            costs = [await refresh_cost(redis, dashboard) for _ in range(rounds)]
            inventory = await counted(redis, dashboard.inventory)
    seconds = sorted(cost.seconds for cost in costs)
    sys.stdout.write(
        f"{streams} streams x {groups} groups: {costs[-1].commands} commands, "
        f"{costs[-1].round_trips} round trips per refresh; "
        f"{statistics.median(seconds) * 1000:.1f} ms median, {seconds[-1] * 1000:.1f} ms max "
        f"over {rounds} refreshes; the inventory: {inventory.commands} commands, "
        f"{inventory.round_trips} round trips, {inventory.seconds * 1000:.1f} ms\n"
    )


if __name__ == "__main__":
    for shape in ((10, 3), (100, 1), (100, 3)):
        asyncio.run(_main(*shape, rounds=20))
