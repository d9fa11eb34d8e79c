"""The leader lease against the real server: NX acquire, compare-and-set renew and release."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill import keys
from gristmill.clock import FakeClock
from gristmill.timing.leader import Lease

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def test_only_one_holder_at_a_time(redis: Redis) -> None:
    first, second = Lease(redis, "sweeper"), Lease(redis, "sweeper")
    assert await first.acquire()
    assert not await second.acquire()
    assert await redis.get(keys.lease("sweeper")) == first.token.encode()
    assert first.held
    assert not second.held


async def test_each_term_has_a_new_token(redis: Redis) -> None:
    lease = Lease(redis, "sweeper")
    assert await lease.acquire()
    token = lease.token
    assert await lease.release()
    assert await lease.acquire()
    assert lease.token != token


async def test_renew_extends_only_for_the_holder(redis: Redis) -> None:
    lease = Lease(redis, "sweeper", ttl_ms=500)
    assert await lease.acquire()
    assert await lease.renew()
    assert await redis.pttl(lease.key) > 400
    await redis.set(lease.key, "someone-else")
    assert not await lease.renew()
    assert lease.lost.is_set()
    assert not lease.held
    assert await redis.get(lease.key) == b"someone-else"


async def test_release_never_deletes_a_successors_lease(redis: Redis) -> None:
    old = Lease(redis, "sweeper", ttl_ms=100)
    assert await old.acquire()
    await redis.delete(old.key)  # as if it expired
    new = Lease(redis, "sweeper")
    assert await new.acquire()
    assert not await old.release()
    assert await redis.get(new.key) == new.token.encode()


async def test_hold_cancels_the_block_when_the_lease_is_taken(redis: Redis) -> None:
    lease = Lease(redis, "sweeper", ttl_ms=300, renew_ms=50)
    assert await lease.acquire()
    reached_end = False
    with anyio.fail_after(10):
        async with lease.hold():
            await redis.set(lease.key, "usurper")
            await anyio.sleep(30)
            reached_end = True
    assert not reached_end
    assert lease.lost.is_set()
    assert await redis.get(lease.key) == b"usurper"  # and not released from under them


async def test_hold_renews_and_releases_on_exit(redis: Redis) -> None:
    lease = Lease(redis, "sweeper", ttl_ms=200, renew_ms=40)
    assert await lease.acquire()
    async with lease.hold():
        await anyio.sleep(0.6)  # three ttls: only renewals keep it
        assert lease.held
        assert await redis.get(lease.key) == lease.token.encode()
    assert await redis.exists(lease.key) == 0
    assert not lease.lost.is_set()


async def test_errors_in_the_block_propagate_unwrapped(redis: Redis) -> None:
    lease = Lease(redis, "sweeper")
    assert await lease.acquire()
    with pytest.raises(KeyError, match="boom"):
        async with lease.hold():
            raise KeyError("boom")
    assert await redis.exists(lease.key) == 0


async def test_a_lease_that_expired_before_its_hold_is_lost_not_an_error(redis: Redis) -> None:
    """The event loop stalls past the ttl between acquire() and hold() (seen: a blocked loop
    killed the runtime with this RuntimeError): the block is cancelled, the lease is lost."""
    lease = Lease(redis, "sweeper", ttl_ms=200, renew_ms=40)
    assert await lease.acquire()
    time.sleep(0.3)  # noqa: ASYNC251 - a blocked loop: our deadline and the server's key pass
    assert not lease.held
    reached_end = False
    with anyio.fail_after(10):
        async with lease.hold():
            await anyio.sleep(30)
            reached_end = True
    assert not reached_end
    assert lease.lost.is_set()


async def test_a_lease_stalled_past_our_deadline_but_not_the_servers_is_kept(
    redis: Redis,
) -> None:
    lease = Lease(redis, "sweeper", ttl_ms=5000, renew_ms=100)
    assert await lease.acquire()
    lease._valid_until = anyio.current_time() - 0.01  # our deadline passed, the server's not
    assert not lease.held
    async with lease.hold():
        await anyio.sleep(0.3)
        assert lease.held  # the first renewal found the key still ours
    assert not lease.lost.is_set()


async def test_hold_needs_an_acquired_lease(redis: Redis) -> None:
    lease = Lease(redis, "sweeper")
    with pytest.raises(RuntimeError, match="acquire"):
        async with lease.hold():
            pass


@pytest.mark.parametrize(("ttl_ms", "renew_ms"), [(10, None), (1000, 1000), (1000, 0)])
def test_bad_timings_are_refused(ttl_ms: int, renew_ms: int | None) -> None:
    with pytest.raises(ValueError, match="ms"):
        Lease(None, "sweeper", ttl_ms=ttl_ms, renew_ms=renew_ms)  # type: ignore[arg-type]


async def test_a_term_records_when_it_began(redis: Redis) -> None:
    lease = Lease(redis, "sweeper", clock=FakeClock(1_700_000_000_000))
    assert lease.acquired_at_ms is None
    assert await lease.acquire()
    assert lease.acquired_at_ms == 1_700_000_000_000


async def test_every_term_has_a_larger_epoch_and_a_lost_race_costs_none(redis: Redis) -> None:
    first, second = Lease(redis, "sweeper"), Lease(redis, "sweeper")
    assert await first.acquire()
    assert not await second.acquire()
    assert not await second.acquire()
    assert await first.release()
    assert await second.acquire()
    assert second.epoch == first.epoch + 1
    assert second.token.startswith(f"{second.epoch}:")
