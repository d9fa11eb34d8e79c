"""Eager release (`app.release_early(stream, within=W)`) keeps its documented promise.

The promise (docs/delayed.md): while every group of the target has no lag and nothing
pending, an entry is released as soon as its release time (its bucket's end; its due time
in the zset layout) is within W seconds, within 200 ms of that moment ("coming into reach");
never before it; and never while a consumer is busy.

Entries are due a little more than W ahead, so each test lasts a few seconds whatever W is.
Lateness is measured per entry from the entry id the server gave it (its time at XADD). The
bound asserted is the promise plus the test process's own worst event-loop lag, measured
beside it: on a loaded machine the sweeper cannot run while the OS does not schedule it, and
that delay is the machine's, not the sweeper's. The distribution is printed (`pytest -s`).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, cast

import anyio
import pytest

from gristmill.clock import SYSTEM_CLOCK
from gristmill.timing.delayed import DelayedStore, Layout
from gristmill.timing.due import release_ms
from gristmill.timing.leader import Lease
from gristmill.timing.sweeper import Sweeper
from tests.timing.streams import read_entries

if TYPE_CHECKING:
    from redis.asyncio import Redis

PROMISE_MS = 200
TARGET = "orders"
GROUP = "workers"
IN_WINDOW = 12  # entries that come into reach during the test
BEYOND = 4  # entries that stay out of reach: never released by the test's end


class LoopLag:
    """The worst lateness of a 10 ms sleep in this process: how late the OS lets us run."""

    def __init__(self) -> None:
        self.worst_ms = 0.0

    async def watch(self) -> None:
        while True:
            asked = anyio.current_time()
            await anyio.sleep(0.01)
            self.worst_ms = max(self.worst_ms, (anyio.current_time() - asked - 0.01) * 1000)


async def consume(redis: Redis, *, ack: bool) -> None:
    """A consumer of the target: reads everything; acks it at once unless `ack` is False."""
    while True:
        reply = cast(
            "list[tuple[bytes, list[tuple[bytes, object]]]] | None",
            await redis.xreadgroup(GROUP, "c1", {TARGET: ">"}, count=100, block=20),
        )
        for _, entries in reply or []:
            if ack and entries:
                await redis.xack(TARGET, GROUP, *[entry_id for entry_id, _ in entries])


def fields(due_ms: int) -> list[bytes]:
    return [b"schema_id", b"s" * 18, b"payload", b"p" * 80, b"h:due", b"%d" % due_ms]


async def schedule(store: DelayedStore, within_s: float) -> tuple[int, list[int]]:
    """IN_WINDOW entries coming into reach 0.4-2.6 s from now, BEYOND entries 60 s later."""
    now = SYSTEM_CLOCK.now_ms()
    base = now + round(within_s * 1000)
    dues = [base + 400 + n * 2200 // IN_WINDOW for n in range(IN_WINDOW)]
    dues += [base + 60_000 + n for n in range(BEYOND)]
    await store.schedule_many((TARGET, fields(due), due) for due in dues)
    return now, dues


def sweeper_for(redis: Redis, store: DelayedStore, within_s: float) -> Sweeper:
    lease = Lease(redis, "sweeper", ttl_ms=3000)
    return Sweeper(redis, store, lease, eager={TARGET: within_s})


@pytest.mark.parametrize(
    ("within_s", "layout"),
    [(1.0, "buckets"), (5.0, "buckets"), (5.0, "zset"), (30.0, "buckets"), (90.0, "buckets")],
)
async def test_an_idle_target_gets_each_entry_as_it_comes_into_reach(
    redis: Redis, within_s: float, layout: Layout
) -> None:
    store = DelayedStore(redis, layout=layout, bucket_ms=1000)
    await redis.xgroup_create(TARGET, GROUP, id="$", mkstream=True)
    sweeper = sweeper_for(redis, store, within_s)
    lag = LoopLag()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lag.watch)
        tg.start_soon(sweeper.run)
        tg.start_soon(lambda: consume(redis, ack=True))
        await schedule(store, within_s)
        with anyio.fail_after(30):
            while sweeper.counts.moved < IN_WINDOW:
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    window_ms = round(within_s * 1000)
    bucket_ms = store.bucket_arg
    late = []
    for entry_id, found in await read_entries(redis, TARGET):
        due = int(found[b"h:due"])
        reach = release_ms(due, bucket_ms) - window_ms
        late.append(int(entry_id.split(b"-")[0]) - reach)
    late.sort()
    print(  # noqa: T201 - the distribution, for the record (pytest -s)
        f"\nwithin={within_s:g}s {layout}: n={len(late)} lateness after reach ms "
        f"min={late[0]} p50={statistics.median(late)} max={late[-1]} "
        f"(worst loop lag here {lag.worst_ms:.0f} ms)"
    )
    assert len(late) == IN_WINDOW, "an entry beyond the window was released"
    assert late[0] >= 0, f"released {-late[0]} ms before it came within {within_s:g} s"
    bound = PROMISE_MS + lag.worst_ms
    assert late[-1] <= bound, f"lateness {late} ms; promise {PROMISE_MS} + loop lag {lag.worst_ms}"
    assert (await store.stats(TARGET)).entries == BEYOND


async def test_a_busy_target_gets_nothing_early(redis: Redis) -> None:
    store = DelayedStore(redis, bucket_ms=1000)
    await redis.xgroup_create(TARGET, GROUP, id="$", mkstream=True)
    await redis.xadd(TARGET, {"payload": "busy"})  # read below, never acked: pending
    sweeper = sweeper_for(redis, store, 30.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweeper.run)
        tg.start_soon(lambda: consume(redis, ack=False))
        now, dues = await schedule(store, 30.0)
        reach_last = release_ms(dues[IN_WINDOW - 1], 1000) - 30_000
        with anyio.fail_after(30):
            while SYSTEM_CLOCK.now_ms() < reach_last:
                await anyio.sleep(0.05)
            passes = sweeper.counts.passes
            while sweeper.counts.passes < passes + 5:  # it re-checked after all were in reach
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    assert sweeper.counts.moved == 0
    assert (await store.stats(TARGET)).entries == IN_WINDOW + BEYOND
    assert SYSTEM_CLOCK.now_ms() < dues[0], "the test outlived the first due time"
    assert now > 0
