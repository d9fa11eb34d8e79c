"""The sweeper: every replica runs one, the lease holder moves due entries into their streams.

Each batch is one Lua script (scripts/delayed_sweep.lua) that checks our lease token, reads
at most `batch` due entries, XADDs them and removes them: all or nothing, so a killed leader
leaves every entry either waiting or moved, never both, never neither. A pass sweeps one batch
per target in turn (a store with a large backlog cannot starve the others) and repeats while
any batch came back full. Between passes it sleeps until the earliest release time, and wakes
early when delayed_add publishes that an earlier entry arrived (pub/sub is at-most-once, so
the sleep is also capped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from gristmill.incident import Incident
from gristmill.timing.delayed import MAX_BATCH, DelayedStore, Fencing
from gristmill.timing.leader import Lease

if TYPE_CHECKING:
    from collections.abc import Mapping

    from redis.asyncio import Redis

    from gristmill.clock import Clock
    from gristmill.settings import Settings

__all__ = ("Sweeper", "SweeperCounts")

log = logging.getLogger(__name__)

ROLE = "sweeper"
LONGEST_SLEEP_S = 5.0  # a lost wake message delays a new earliest entry by at most this
EAGER_POLL_S = 0.1  # how often an idle target with eager entries in reach is re-checked
WAKE_POLL_S = 1.0
TARGETS_REFRESH_S = 1.0  # a target registered meanwhile waits at most this (or a wake)
BATCH_TIMEOUT_S = 10.0  # beyond the client's socket timeout: that one fires first
SKIP_AT_MOST_S = 60.0  # a store known to have nothing due is still swept this often
SKIP_MARGIN_MS = 5  # skip a store only if its next release is at least this far off


@dataclass(slots=True)
class SweeperCounts:
    """What this sweeper did since it started (for tests, health and the CLI)."""

    terms: int = 0  # times it became leader
    passes: int = 0
    batches: int = 0
    moved: int = 0
    refused: int = 0  # sweeps refused by the token check: we had lost the lease


class Sweeper:
    """Competes for the "sweeper" lease and, while leader, sweeps every registered target.

    Args:
        redis: the client.
        store: the delayed store (its prefix names the targets set and the wake channel).
        lease: a Lease for the role "sweeper".
        batch: entries per script call, at most 1,000 (~2.5 ms of server time).
        eager: target stream -> horizon in seconds: when that target has no backlog, entries
            due within the horizon are released early (opt-in per stream).
        clock: release by this clock; None (default) releases by the server's TIME, so a
            skewed replica clock cannot release entries early.
        fencing: "lease" (default) checks the lease key inside every sweep script; "epoch"
            checks the lease's epoch against a fence key next to each store instead, for
            Redis Cluster, where the lease key lives in another slot (docs/delayed.md).
    """

    def __init__(
        self,
        redis: Redis,
        store: DelayedStore,
        lease: Lease,
        *,
        batch: int = MAX_BATCH,
        eager: Mapping[str, float] | None = None,
        clock: Clock | None = None,
        longest_sleep: float = LONGEST_SLEEP_S,
        fencing: Fencing = "lease",
    ) -> None:
        if not 0 < batch <= MAX_BATCH:
            raise ValueError(f"batch {batch}: expected 1..{MAX_BATCH}")
        self.redis = redis
        self.store = store
        self.lease = lease
        self.batch = batch
        self.eager_ms = {stream: round(s * 1000) for stream, s in (eager or {}).items()}
        self.clock = clock
        self.longest_sleep = longest_sleep
        self.fencing: Fencing = fencing
        self.counts = SweeperCounts()
        self._wake: anyio.Event | None = None
        self._listening: anyio.Event | None = None
        self._targets: list[str] = []
        self._targets_read_at: float | None = None  # anyio time; None: read before the next pass
        # target -> (server ms of its next release, or None: empty; anyio time it was learnt):
        # a pass skips a store with nothing due until then. Any wake message (a store got a
        # new earliest entry), a new term and SKIP_AT_MOST_S forget it.
        self._known_next: dict[str, tuple[int | None, float]] = {}
        self._server_now: tuple[int, float] = (0, 0.0)  # (server ms, anyio time) last seen
        self._forgets = 0  # counts the clears: a sweep learns nothing across one (a race)
        self._subscribed = False  # skipping relies on wake messages: only while we hear them
        self._unreachable = Incident(log, "sweeper lease: cannot reach the server")
        self._wake_lost = Incident(log, "sweeper wake channel lost, resubscribing")

    @classmethod
    def from_settings(
        cls, redis: Redis, settings: Settings, *, eager: Mapping[str, float] | None = None
    ) -> Sweeper:
        """A sweeper with the store layout, bucket width, prefix and lease ttl of `settings`."""
        store = DelayedStore.from_settings(redis, settings)
        lease = Lease(redis, ROLE, ttl_ms=settings.lease_ttl_ms, prefix=settings.key_prefix)
        fencing: Fencing = "epoch" if isinstance(redis, RedisCluster) else "lease"
        return cls(redis, store, lease, eager=eager, fencing=fencing)

    async def run(self) -> None:
        """Sweep while leader, wait while not, forever; returns only by cancellation."""
        self._wake = anyio.Event()
        self._listening = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._listen_for_wakes, name="sweeper wake")
            with anyio.move_on_after(WAKE_POLL_S):
                await self._listening.wait()  # a wake sent before we listen would be lost
            while True:
                if await self._try_acquire():
                    self.counts.terms += 1
                    self._forget_known()  # a new term looks at every store again
                    async with self.lease.hold():
                        await self._sweep_while_leader()
                await anyio.sleep(self.lease.renew_ms / 1000)

    async def _try_acquire(self) -> bool:
        try:
            acquired = await self.lease.acquire()
        except (RedisError, OSError) as exc:
            self._unreachable.failed(exc)  # h2: once per outage, not once per try
            return False
        self._unreachable.ok()
        return acquired

    async def _sweep_while_leader(self) -> None:
        while True:
            self._wake = anyio.Event()  # before the pass: a wake during it is not missed
            started = anyio.current_time()
            try:
                busy, next_wake_ms, now_ms, eager_waiting = await self.sweep_pass()
            except (RedisError, OSError) as exc:
                log.warning("sweep failed, retrying: %s", exc)
                await anyio.sleep(self.lease.renew_ms / 1000)
                continue
            if busy:
                await anyio.lowlevel.checkpoint()  # let renewals and cancellation in
                continue
            delay = self.longest_sleep
            if next_wake_ms is not None:
                elapsed = anyio.current_time() - started
                # +1 ms: the loop may fire a timer up to its clock resolution early, and an
                # early pass finds nothing due and costs a round trip per target
                until_due = (next_wake_ms - now_ms + 1) / 1000 - elapsed
                delay = min(delay, max(until_due, 0.0))
            if eager_waiting:
                delay = min(delay, EAGER_POLL_S)
            with anyio.move_on_after(delay):
                await self._wake.wait()

    async def sweep_pass(self) -> tuple[bool, int | None, int, bool]:
        """One batch per target: (any batch full, next wake-up, now, eager waiting).

        The next wake-up is the earliest moment a pass has work: a store's next release
        time, or for an eager target the moment its next release comes within the horizon
        (release - horizon), so an idle target gets it as soon as the promise allows.
        A store whose last sweep moved everything due and reported its next release (or none)
        is not swept again before that release, unless a wake message came meanwhile: with
        many processors, most retry stores are empty, and sweeping each one every pass was
        most of an idle leader's work.
        Eager waiting: an eager target has entries in reach but was busy (re-checked every
        EAGER_POLL_S).

        A refused batch (we lost the lease) marks the lease lost, which cancels the caller
        inside `Lease.hold()`.
        """
        self.counts.passes += 1
        busy = eager_waiting = False
        next_wake_ms: int | None = None
        now_ms = self._server_ms_now()  # if every store is skipped: the server's now, estimated
        read_at = self._targets_read_at
        if read_at is None or anyio.current_time() - read_at > TARGETS_REFRESH_S:
            # not every pass: a pass of due entries is then script calls only, and a leader
            # resuming from a pause reaches the token check before anything else
            self._targets = await self.store.targets()
            self._targets_read_at = anyio.current_time()
        for target in self._targets:
            horizon_ms = self.eager_ms.get(target, 0)
            skip, known_wake = self._nothing_due(target)
            if skip:
                if known_wake is not None:
                    next_wake_ms = (
                        known_wake if next_wake_ms is None else min(next_wake_ms, known_wake)
                    )
                continue
            forgets = self._forgets
            # shielded: the script is atomic on the server either way, and a call cut off
            # mid-reply would leave its outcome (and a refusal) unknown and the link reset
            with anyio.move_on_after(BATCH_TIMEOUT_S, shield=True) as scope:
                try:
                    result = await self.store.sweep_batch(
                        target,
                        token=self.lease.token,
                        lease_key=self.lease.key,
                        up_to_ms=None if self.clock is None else self.clock.now_ms(),
                        limit=self.batch,
                        eager_horizon_ms=horizon_ms,
                        fencing=self.fencing,
                    )
                except ResponseError as exc:
                    # one broken target (not a stream, say) must not stop the others
                    log.error("cannot sweep into %s: %s", target, exc, extra={"stream": target})
                    continue
            if scope.cancelled_caught:
                raise TimeoutError(f"sweep batch of {target} got no reply in {BATCH_TIMEOUT_S} s")
            self.counts.batches += 1
            if result.refused:
                self.counts.refused += 1
                self.lease.mark_lost("a sweep was refused by the token check")
                await anyio.lowlevel.checkpoint()  # cancelled here when inside hold()
                return False, None, now_ms, False
            self.counts.moved += result.moved
            now_ms = result.now_ms
            self._server_now = (now_ms, anyio.current_time())
            if result.moved:
                log.debug("swept %d entries", result.moved, extra={"stream": target})
            busy = busy or result.moved >= self.batch
            release = result.next_release_ms
            if release is not None:
                in_reach = release - horizon_ms <= now_ms
                # in reach but not released: the target was busy; else its reach is the wake
                wake = release if in_reach else release - horizon_ms
                next_wake_ms = wake if next_wake_ms is None else min(next_wake_ms, wake)
                eager_waiting = eager_waiting or (horizon_ms > 0 and in_reach)
            if forgets == self._forgets:  # else a wake came during the call: ask next time
                self._learn(target, horizon_ms, result.moved, release)
        return busy, next_wake_ms, now_ms, eager_waiting

    def _forget_known(self) -> None:
        self._known_next.clear()
        self._forgets += 1

    def _learn(self, target: str, horizon_ms: int, moved: int, release: int | None) -> None:
        """Remember when `target` next has something due, if that is certain (see sweep_pass)."""
        if self.clock is not None or horizon_ms > 0 or moved >= self.batch:
            self._known_next.pop(target, None)  # a test clock, eager, or more to move: ask
        else:
            self._known_next[target] = (release, anyio.current_time())

    def _nothing_due(self, target: str) -> tuple[bool, int | None]:
        """(skip `target` this pass, its known next release): skipped while its next release,
        as its last sweep reported it, is still ahead by the server's clock (estimated from
        the last reply), for at most SKIP_AT_MOST_S."""
        known = self._known_next.get(target) if self._subscribed else None
        if known is None:  # unknown, or not listening for wakes (sweep_pass called alone)
            return False, None
        release, learnt_at = known
        now = anyio.current_time()
        if now - learnt_at > SKIP_AT_MOST_S:
            return False, None
        if release is None:
            return True, None
        return release - self._server_ms_now() > SKIP_MARGIN_MS, release

    def _server_ms_now(self) -> int:
        """The server's clock now, from its last reply and the time since (0: none yet)."""
        server_ms, seen_at = self._server_now
        if not server_ms:
            return 0
        return server_ms + round((anyio.current_time() - seen_at) * 1000)

    async def _listen_for_wakes(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.store.wake_channel)
                confirmed = await pubsub.get_message(timeout=WAKE_POLL_S)
                self._subscribed = confirmed is not None  # the server confirmed it: we hear
                if self._listening is not None:
                    self._listening.set()
                self._wake_lost.ok()
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=WAKE_POLL_S
                    )
                    if message is not None and self._wake is not None:
                        self._targets_read_at = None  # the store may be a new target
                        self._forget_known()  # some store has a new earliest entry
                        self._wake.set()
            # RuntimeError: redis-py reconnecting the subscription over a transport uvloop has
            # closed (seen in a cluster failover); it is connection trouble like the others
            except (RedisError, OSError, RuntimeError) as exc:
                self._wake_lost.failed(exc)  # h2: once per outage
                self._subscribed = False
                self._forget_known()  # wakes may have been missed meanwhile
                await anyio.sleep(WAKE_POLL_S)
            finally:
                self._subscribed = False
                with anyio.CancelScope(shield=True):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis-py 8.2
