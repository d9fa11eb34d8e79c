"""The sweeper in-process against the real server: exactly one leader sweeps, it sleeps until
the next due time, wakes early on the wake channel, and a stale token is refused."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from gristmill import keys
from gristmill.clock import SYSTEM_CLOCK, FakeClock
from gristmill.settings import Settings
from gristmill.timing.delayed import DelayedStore
from gristmill.timing.leader import Lease
from gristmill.timing.sweeper import Sweeper
from tests.timing.streams import payload_counts, read_entries

if TYPE_CHECKING:
    from redis.asyncio import Redis


def entry(n: int) -> list[bytes]:
    return [b"schema_id", b"s" * 16, b"payload", b"%d" % n]


def replica(redis: Redis, *, longest_sleep: float = 5.0, bucket_ms: int = 10) -> Sweeper:
    store = DelayedStore(redis, bucket_ms=bucket_ms)
    lease = Lease(redis, "sweeper", ttl_ms=600, renew_ms=100)
    return Sweeper(redis, store, lease, longest_sleep=longest_sleep)


async def wait_until_moved(sweepers: list[Sweeper], count: int) -> None:
    with anyio.fail_after(30):
        while sum(s.counts.moved for s in sweepers) < count:
            await anyio.sleep(0.02)


async def test_replicas_sweep_everything_once_and_only_one_leads(redis: Redis) -> None:
    sweepers = [replica(redis) for _ in range(3)]
    store = sweepers[0].store
    now = SYSTEM_CLOCK.now_ms()
    await store.schedule_many(
        (("orders", "payments")[n % 2], entry(n), now + (n % 300)) for n in range(5000)
    )
    async with anyio.create_task_group() as tg:
        for sweeper in sweepers:
            tg.start_soon(sweeper.run)
        await wait_until_moved(sweepers, 5000)
        tg.cancel_scope.cancel()
    assert await payload_counts(redis, "orders", "payments") == Counter(range(5000))
    assert sorted(s.counts.terms for s in sweepers) == [0, 0, 1]
    assert [s.counts.refused for s in sweepers] == [0, 0, 0]
    assert (await store.stats("orders")).entries == 0


async def test_it_sleeps_until_due_instead_of_polling(redis: Redis) -> None:
    sweeper = replica(redis, longest_sleep=60)
    await sweeper.store.schedule("orders", entry(1), SYSTEM_CLOCK.now_ms() + 600_000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweeper.run)
        await anyio.sleep(1.0)
        tg.cancel_scope.cancel()
    assert sweeper.counts.terms == 1
    assert sweeper.counts.passes == 1  # one pass, then asleep: nothing was due


async def test_an_earlier_entry_wakes_it(redis: Redis) -> None:
    sweeper = replica(redis, longest_sleep=600)
    store = sweeper.store
    await store.schedule("orders", entry(1), SYSTEM_CLOCK.now_ms() + 600_000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweeper.run)
        with anyio.fail_after(10):
            while sweeper.counts.passes == 0:
                await anyio.sleep(0.01)
        await store.schedule("orders", entry(2), SYSTEM_CLOCK.now_ms() - 1000)  # due
        await wait_until_moved([sweeper], 1)
        tg.cancel_scope.cancel()
    assert await payload_counts(redis, "orders") == Counter([2])
    assert sweeper.counts.passes <= 3  # woken by the channel, not by polling


async def test_a_sweeper_that_lost_its_lease_is_refused(redis: Redis) -> None:
    sweeper = replica(redis)
    await sweeper.store.schedule("orders", entry(1), SYSTEM_CLOCK.now_ms() - 1000)
    assert await sweeper.lease.acquire()
    await redis.set(sweeper.lease.key, "the-next-leader")  # as if ours expired and was taken
    await sweeper.sweep_pass()
    assert sweeper.counts.refused == 1
    assert sweeper.counts.moved == 0
    assert sweeper.lease.lost.is_set()
    assert await redis.exists("orders") == 0


async def test_a_long_backlog_does_not_starve_another_target(redis: Redis) -> None:
    sweeper = replica(redis)
    now = SYSTEM_CLOCK.now_ms() - 1000
    await sweeper.store.schedule_many(("bulk", entry(n), now) for n in range(5000))
    await sweeper.store.schedule("urgent", entry(-1), now)
    assert await sweeper.lease.acquire()
    busy, *_ = await sweeper.sweep_pass()
    assert busy
    assert await redis.xlen("urgent") == 1  # in the first pass, after only 1,000 of bulk
    assert await redis.xlen("bulk") == 1000


async def test_from_settings_takes_layout_bucket_and_ttl(redis: Redis) -> None:
    settings = Settings(delayed_layout="zset", delayed_bucket_ms=250, lease_ttl_ms=900)
    sweeper = Sweeper.from_settings(redis, settings)
    assert (sweeper.store.layout, sweeper.store.bucket_ms) == ("zset", 250)
    assert sweeper.lease.ttl_ms == 900
    assert sweeper.lease.key == "gm:lease:sweeper"


async def test_batches_are_bounded(redis: Redis) -> None:
    store = DelayedStore(redis)
    with pytest.raises(ValueError, match="batch"):
        Sweeper(redis, store, Lease(redis, "sweeper"), batch=1001)


async def test_eager_releases_early_once_the_target_is_idle(redis: Redis) -> None:
    store = DelayedStore(redis, layout="zset")
    sweeper = Sweeper(
        redis, store, Lease(redis, "sweeper", ttl_ms=600, renew_ms=100), eager={"orders": 600.0}
    )
    await redis.xgroup_create("orders", "workers", id="$", mkstream=True)
    await redis.xadd("orders", {"payload": "0"})  # unread: the target is busy
    await store.schedule("orders", entry(1), SYSTEM_CLOCK.now_ms() + 300_000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweeper.run)
        with anyio.fail_after(10):
            while sweeper.counts.passes < 3:  # it re-checks an eager target while busy
                await anyio.sleep(0.01)
        assert sweeper.counts.moved == 0
        await redis.xreadgroup("workers", "w1", {"orders": ">"})
        await redis.xack("orders", "workers", *[i for i, _ in await read_entries(redis, "orders")])
        await wait_until_moved([sweeper], 1)  # idle now: released five minutes early
        tg.cancel_scope.cancel()
    assert (await payload_counts(redis, "orders"))[1] == 1


def test_the_layout_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="delayed_layout"):
        Settings(delayed_layout="list")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delayed_bucket_ms"):
        Settings(delayed_bucket_ms=0)


async def test_a_broken_target_does_not_stop_the_others(redis: Redis) -> None:
    sweeper = replica(redis)
    now = SYSTEM_CLOCK.now_ms() - 1000
    await sweeper.store.schedule("broken", entry(1), now)
    await sweeper.store.schedule("orders", entry(2), now)
    await redis.set("broken", "not a stream")
    assert await sweeper.lease.acquire()
    await sweeper.sweep_pass()
    assert await payload_counts(redis, "orders") == Counter([2])
    assert (await sweeper.store.stats("broken")).entries == 1


async def test_a_given_clock_decides_what_is_due(redis: Redis) -> None:
    clock = FakeClock(SYSTEM_CLOCK.now_ms())
    store = DelayedStore(redis, bucket_ms=10)
    sweeper = Sweeper(redis, store, Lease(redis, "sweeper"), clock=clock)
    await store.schedule("orders", entry(1), clock.now_ms() + 3_600_000)
    assert await sweeper.lease.acquire()
    await sweeper.sweep_pass()
    assert sweeper.counts.moved == 0
    clock.advance(3601)  # past the bucket end the due time rounds up to
    await sweeper.sweep_pass()
    assert sweeper.counts.moved == 1


async def test_epoch_fencing_refuses_an_older_leader_where_a_newer_one_swept(
    redis: Redis,
) -> None:
    due = SYSTEM_CLOCK.now_ms() - 1000
    store = DelayedStore(redis, bucket_ms=10)
    old = Sweeper(redis, store, Lease(redis, "sweeper", ttl_ms=100), fencing="epoch")
    new = Sweeper(redis, store, Lease(redis, "sweeper"), fencing="epoch")
    await store.schedule("orders", entry(1), due)
    assert await old.lease.acquire()
    await old.sweep_pass()
    assert await redis.get(keys.delayed_fence("orders")) == str(old.lease.epoch).encode()
    await redis.delete(old.lease.key)  # as if it expired while the old leader was paused
    assert await new.lease.acquire()
    assert new.lease.epoch > old.lease.epoch
    await store.schedule("orders", entry(2), due)
    await new.sweep_pass()  # the new leader's first pass fences every store
    await store.schedule("orders", entry(3), due)
    await old.sweep_pass()
    assert old.counts.refused == 1
    assert await payload_counts(redis, "orders") == Counter([1, 2])
    assert (await store.stats("orders")).entries == 1  # entry 3 waits for the real leader


async def test_epoch_fences_live_in_their_store_slot() -> None:
    for stream in ("orders", "{eu}.orders"):
        slot = keys.key_slot(keys.delayed_store(stream).encode())
        assert keys.key_slot(keys.delayed_fence(stream).encode()) == slot
        assert keys.key_slot(stream.encode()) == slot


async def test_a_pass_skips_stores_with_nothing_due_until_a_wake(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stores whose last sweep left nothing due are not swept again before their next release
    (a process with many processors has mostly empty retry stores), and a new earliest entry
    (a wake) makes the next pass look at every store again, so nothing is released late."""
    sweeper = replica(redis, longest_sleep=60)
    store = sweeper.store
    swept: list[str] = []
    sweep_batch = store.sweep_batch

    async def recorded(target: str, **options: Any) -> Any:
        swept.append(target)
        return await sweep_batch(target, **options)

    monkeypatch.setattr(store, "sweep_batch", recorded)  # the real call, noted
    now = SYSTEM_CLOCK.now_ms()
    targets = ("a", "b", "c")
    for n, target in enumerate(targets):
        await store.schedule(target, entry(n), now - 1000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweeper.run)
        await wait_until_moved([sweeper], 3)
        await anyio.sleep(0.2)  # settled: every store swept empty, its emptiness known
        swept.clear()
        due = SYSTEM_CLOCK.now_ms() + 400
        await store.schedule("a", entry(9), due)  # a wake: the pass right after asks all three
        await wait_until_moved([sweeper], 4)
        released_at = SYSTEM_CLOCK.now_ms()
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert 0 <= released_at - due <= 250, "released late (or early)"
    # the wake's pass asked every store once; until the release, and after it, only "a"
    assert (swept.count("b"), swept.count("c")) == (1, 1), swept
    assert swept.count("a") >= 2, swept
    assert await payload_counts(redis, *targets) == Counter([0, 1, 2, 9])
