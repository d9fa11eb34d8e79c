"""A leader lease: `SET <key> <token> NX PX <ttl>`, renewed and released by compare-and-set.

Any number of replicas run the same role; the one holding the lease acts. Loss is signalled
at once: `hold()` cancels its body (and returns normally) when a renewal finds another holder
or when the lease may have expired by our own monotonic clock (a partition or a pause must not
leave us acting past the ttl). Leader-only writes also pass `token` into their scripts, which
compare it with the key (fencing): a paused ex-leader that wakes up cannot write.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from redis.exceptions import RedisError

from gristmill import keys, scripts
from gristmill.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from redis.asyncio import Redis

__all__ = ("Lease",)

log = logging.getLogger(__name__)

RELEASE_TIMEOUT_S = 1.0


class Lease:
    """A leader lease for one role (e.g. "sweeper").

    Args:
        redis: the client.
        role: what the lease elects a leader for; the key is keys.lease(role, prefix).
        ttl_ms: how long the lease lives without renewal; bounds failover time.
        renew_ms: how often the holder renews (and a contender retries); default ttl / 3.
        prefix: the key prefix (settings.key_prefix).
        clock: wall time for `acquired_at_ms` only; expiry is judged by the server's PX and
            our monotonic clock, never by wall time (a clock step must not extend a lease).
    """

    def __init__(
        self,
        redis: Redis,
        role: str,
        *,
        ttl_ms: int = 2000,
        renew_ms: int | None = None,
        prefix: str = keys.DEFAULT_PREFIX,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if ttl_ms < 30:
            raise ValueError(f"ttl_ms {ttl_ms}: too short to renew in time; use 30 or more")
        self.redis = redis
        self.role = role
        self.ttl_ms = ttl_ms
        self.renew_ms = renew_ms if renew_ms is not None else max(ttl_ms // 3, 10)
        if not 0 < self.renew_ms < ttl_ms:
            raise ValueError(f"renew_ms {self.renew_ms}: expected 1..{ttl_ms - 1} (below ttl)")
        self.key = keys.lease(role, prefix)
        self.epoch_key = keys.lease_epoch(role, prefix)
        self._token = self._new_token()
        self._held = False
        self._valid_until = 0.0  # monotonic: when the lease may expire, at the latest
        self._body: anyio.CancelScope | None = None
        self._lost: anyio.Event | None = None  # made in the event loop, on first use
        self.clock = clock
        self.acquired_at_ms: int | None = None  # wall time the current term began

    @staticmethod
    def _new_token(epoch: int = 0) -> str:
        # the epoch orders terms (fencing in Cluster); host and pid tell operators who holds
        # it; the random part keeps tokens unique even if the epoch counter was lost
        return f"{epoch}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"

    @property
    def epoch(self) -> int:
        """The current term's number: larger for every later term of this role."""
        return int(self._token.split(":", 1)[0])

    @property
    def token(self) -> str:
        """This holder's token of the current term (a new one on each acquire); for fencing."""
        return self._token

    @property
    def lost(self) -> anyio.Event:
        """Set when the current term's lease is lost (a new term starts with a new event)."""
        if self._lost is None:
            self._lost = anyio.Event()
        return self._lost

    @property
    def held(self) -> bool:
        """True while acquired, not lost, and not past its ttl by our own clock."""
        return self._held and anyio.current_time() < self._valid_until

    async def acquire(self) -> bool:
        """Try once to take the lease; True if this process now holds it."""
        if await self.redis.exists(self.key):
            return False  # held: do not spend an epoch on a try that cannot win
        epoch = int(await self.redis.incr(self.epoch_key))
        token = self._new_token(epoch)
        sent = anyio.current_time()
        if not await self.redis.set(self.key, token, nx=True, px=self.ttl_ms):
            return False
        self._token = token
        self._held = True
        self.acquired_at_ms = self.clock.now_ms()
        self._valid_until = sent + self._margin_ttl_s()
        self._lost = anyio.Event()
        log.info("lease %s acquired", self.role, extra={"role": self.role, "token": token})
        return True

    def _margin_ttl_s(self) -> float:
        # stop acting a little before the server expires the key: its clock and ours differ
        margin_ms = min(self.renew_ms, self.ttl_ms // 10)
        return (self.ttl_ms - margin_ms) / 1000

    async def renew(self) -> bool:
        """Extend the lease if we still hold it; False means it is lost (and marks it so)."""
        sent = anyio.current_time()
        renewed = await scripts.load("lease_renew")(
            self.redis, [self.key], [self._token, self.ttl_ms]
        )
        if int(renewed) == 1:
            self._valid_until = sent + self._margin_ttl_s()
            return True
        self.mark_lost("another holder has it or it expired")
        return False

    async def release(self) -> bool:
        """Give the lease back if we hold it, so a successor need not wait for the ttl."""
        self._held = False
        released = await scripts.load("lease_release")(self.redis, [self.key], [self._token])
        return int(released) == 1

    def mark_lost(self, why: str) -> None:
        """Stop acting now: sets `lost` and cancels the body of `hold()`."""
        if self._held:
            log.warning("lease lost: %s", why, extra={"role": self.role, "token": self._token})
        self._held = False
        self.lost.set()
        if self._body is not None:
            self._body.cancel()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[Lease]:
        """Keep renewing an acquired lease while the block runs; release it on exit.

        When the lease is lost the block is cancelled and the `async with` exits normally;
        `lost` is set. Exceptions from the block propagate (unwrapped).

        A lease acquired but already past its ttl by our clock (the event loop stalled
        between `acquire()` and here) is not an error: the renewal asks the server at once,
        and the block is cancelled if the lease is gone (its writes are fenced meanwhile).

        Raises:
            RuntimeError: If the lease was never acquired, or was released or lost.
        """
        if not self._held:
            raise RuntimeError(f"lease {self.key} is not held: acquire() it first")
        try:
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as body:
                    self._body = body
                    tg.start_soon(self._keep_renewing, name=f"lease {self.role}")
                    yield self
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None  # the block's own error, not a group
            raise
        finally:
            self._body = None
            was_held = self._held
            self._held = False
            if was_held:
                with anyio.move_on_after(RELEASE_TIMEOUT_S, shield=True):
                    try:
                        await self.release()
                    except (RedisError, OSError) as exc:
                        log.warning("lease release failed (it expires by itself): %s", exc)

    async def _keep_renewing(self) -> None:
        while True:
            left = self._valid_until - anyio.current_time()
            await anyio.sleep(max(min(self.renew_ms / 1000, left), 0))
            left = self._valid_until - anyio.current_time()
            # Past our own deadline (a pause, a partition) we still ask the server once, for
            # at most one renew interval, before giving up: the answer is usually "taken",
            # and meanwhile any leader-only write is refused by its token check anyway.
            try:
                with anyio.fail_after(max(left, self.renew_ms / 1000)):
                    if not await self.renew():
                        return
            except (RedisError, OSError, TimeoutError) as exc:
                if anyio.current_time() >= self._valid_until:
                    self.mark_lost(f"not renewed within the ttl ({exc!r})")
                    return
                log.warning("lease renewal failed: %s", exc, extra={"role": self.role})
