"""The delayed store: entries waiting for their time, one store per target stream.

Two layouts share one sorted set per target (keys.delayed_store), told apart member by member,
so a store written under one layout setting is still swept after the setting changes:

- "buckets" (default): the sorted set holds time buckets; each bucket's entries wait in a
  listpack-encoded list. A few bytes of overhead per entry; released at the bucket's end
  (up to `bucket_ms` late, never early).
- "zset": one sorted-set member per entry; released at its own millisecond, at about twice
  the memory (docs/delayed.md has the figures).

Writes go through scripts/lib/delayed_add.lua (also included by the runtime's commit script);
the sweep is scripts/delayed_sweep.lua, one bounded batch per call. Reading a store for people
(counts, the first entries) is `waiting.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from redis.exceptions import NoScriptError

from gristmill import keys, scripts
from gristmill.clock import SYSTEM_CLOCK, Clock
from gristmill.errors import ConfigError
from gristmill.timing.due import due_ms_for
from gristmill.timing.packing import pack_array_header, pack_entry, pack_str, pack_uint
from gristmill.timing.waiting import DelayedEntry, StoreStats, peek, store_stats

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from redis.asyncio import Redis

    from gristmill.settings import Settings

__all__ = ("DelayedEntry", "DelayedStore", "Fencing", "StoreStats", "SweepResult", "pack_entry")

log = logging.getLogger(__name__)

Layout = Literal["buckets", "zset"]
Fencing = Literal["lease", "epoch"]
MAX_BATCH = 1000  # entries per script call: ~2.5 ms of server time (docs/delayed.md)
FOREVER_MS = 253_402_300_799_999  # 9999-12-31: "everything", for move-now


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep call did."""

    refused: bool  # the lease token was not the holder's: nothing was written
    moved: int
    next_release_ms: int | None  # the store's earliest release time after the call
    now_ms: int  # the time the script released up to (the server's, unless given)


class DelayedStore:
    """Schedule stream entries for later, into per-target delayed stores.

    Args:
        redis: the client.
        prefix: the key prefix of global keys (settings.key_prefix).
        layout: "buckets" (compact, released at bucket ends) or "zset" (exact, larger).
        bucket_ms: bucket width of the "buckets" layout.
        clock: the clock `delay=` counts from.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = keys.DEFAULT_PREFIX,
        layout: Layout = "buckets",
        bucket_ms: int = 1000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if layout not in ("buckets", "zset"):
            raise ConfigError(f"delayed layout {layout!r}: expected 'buckets' or 'zset'")
        if bucket_ms <= 0:
            raise ConfigError(f"delayed bucket_ms {bucket_ms}: expected a positive integer")
        self.redis = redis
        self.prefix = prefix
        self.layout: Layout = layout
        self.bucket_ms = bucket_ms
        self.clock = clock

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> DelayedStore:
        """The store with the prefix, layout and bucket width of `settings`."""
        return cls(
            redis,
            prefix=settings.key_prefix,
            layout=settings.delayed_layout,
            bucket_ms=settings.delayed_bucket_ms,
        )

    @property
    def bucket_arg(self) -> int:
        """The `bucket_ms` argument of delayed_add: the bucket width, or 0 for "zset"."""
        return self.bucket_ms if self.layout == "buckets" else 0

    @property
    def wake_channel(self) -> str:
        """The channel delayed_add publishes to when a store's earliest release moves earlier."""
        return keys.delayed_wake(self.prefix)

    # -- writing ---------------------------------------------------------------------------

    async def register_targets(self, streams: Iterable[str]) -> None:
        """Tell the sweeper that each of `streams` may receive delayed entries (one SADD)."""
        members = list(streams)
        if members:
            await self.redis.sadd(keys.delayed_targets(self.prefix), *members)

    async def schedule(
        self, stream: str, fields: Sequence[bytes], due_ms: int, *, execution_class: str = ""
    ) -> None:
        """Park one entry with `fields` until `due_ms`, then into `stream` (or a class lane)."""
        await self.schedule_many([(stream, fields, due_ms)], execution_class=execution_class)

    async def schedule_many(
        self,
        items: Iterable[tuple[str, Sequence[bytes], int]],
        *,
        execution_class: str = "",
    ) -> int:
        """Park many `(stream, fields, due_ms)` entries: one script call per 1,000, pipelined.

        Returns:
            The number of entries parked.
        """
        if execution_class and not keys.EXECUTION_CLASS.fullmatch(execution_class):
            raise ValueError(
                f"execution class {execution_class!r}: expected 1-32 of a-z 0-9 _ - (like 'long')"
            )
        by_slot: dict[int, list[tuple[str, bytes, int]]] = {}
        # stream -> (target, its store, the batch of its slot): key names and slots once each
        routes: dict[str, tuple[str, str, list[tuple[str, bytes, int]]]] = {}
        for stream, fields, due_ms in items:
            route = routes.get(stream)
            if route is None:
                target = keys.class_lane(stream, execution_class) if execution_class else stream
                store = keys.delayed_store(target)
                batch = by_slot.setdefault(keys.key_slot(store.encode()), [])
                route = routes[stream] = (target, store, batch)
            if due_ms < 0:
                raise ValueError(f"due_ms {due_ms}: expected ms since the epoch, 0 or more")
            route[2].append((route[1], pack_entry(fields), due_ms))
        targets = {target for target, _, _ in routes.values()}
        calls = [
            self._schedule_call(entries[start : start + MAX_BATCH])
            for entries in by_slot.values()
            for start in range(0, len(entries), MAX_BATCH)
        ]
        if not calls:
            return 0
        # the targets set is re-added on every call (one SADD in the same round trip), not
        # cached: an operator's FLUSHALL or DEL must not hide a store from the sweeper
        return await self._run_pipelined(
            scripts.load("delayed_schedule"), calls, register=sorted(targets)
        )

    def _schedule_call(
        self, entries: Sequence[tuple[str, bytes, int]]
    ) -> tuple[list[str], list[str | bytes | int]]:
        index_of: dict[str, int] = {}
        triples: list[bytes] = [pack_array_header(3 * len(entries))]
        for store, member, due_ms in entries:
            index = index_of.setdefault(store, len(index_of) + 1)
            triples.append(pack_uint(index))
            triples.append(pack_uint(due_ms))
            triples.append(pack_str(member))
        # one msgpack blob rather than 3 arguments per entry: encoding thousands of small
        # arguments was most of the client's time
        return list(index_of), [self.wake_channel, self.bucket_arg, b"".join(triples)]

    async def _run_pipelined(
        self,
        script: scripts.Script,
        calls: Sequence[tuple[list[str], list[str | bytes | int]]],
        register: Sequence[str],
    ) -> int:
        total = 0
        todo = list(calls)
        for attempt in range(2):
            if not todo:
                break
            pipe = self.redis.pipeline(transaction=False)
            if attempt == 0:
                pipe.sadd(keys.delayed_targets(self.prefix), *register)
            for call_keys, args in todo:
                pipe.evalsha(script.sha, len(call_keys), *call_keys, *args)
            results = await pipe.execute(raise_on_error=False)
            if attempt == 0:
                if isinstance(results[0], Exception):
                    raise results[0]
                results = results[1:]
            missing = []
            for call, result in zip(todo, results, strict=True):
                if isinstance(result, NoScriptError) and attempt == 0:
                    missing.append(call)  # a restarted server forgot it: nothing was written
                elif isinstance(result, Exception):
                    raise result
                else:
                    total += int(result)
            if missing:
                await self.redis.script_load(script.source)
            todo = missing
        return total

    async def publish(
        self,
        stream: str,
        fields: Sequence[bytes],
        *,
        delay: float | None = None,
        at: datetime | float | None = None,
        execution_class: str = "",
    ) -> int:
        """Publish `fields` to `stream` later: `delay` seconds from now, or `at` a time.

        For producers that are not processors. An entry due now or in the past is released
        by the sweeper's next pass.

        Args:
            stream: the target stream.
            fields: the entry's flat fields [name, value, ...], as the stream will hold them.
            delay: seconds from now.
            at: an aware datetime, or seconds since the epoch.
            execution_class: a class lane of `stream` (keys.class_lane) instead of `stream`.

        Returns:
            The due time in ms since the epoch.

        Raises:
            ValueError: Unless exactly one of `delay` and `at` is given and it is valid.
        """
        due_ms = due_ms_for(self.clock.now_ms(), delay=delay, at=at)
        await self.schedule(stream, fields, due_ms, execution_class=execution_class)
        return due_ms

    # -- sweeping ----------------------------------------------------------------------------

    async def sweep_batch(
        self,
        stream: str,
        *,
        token: str,
        lease_key: str,
        up_to_ms: int | None = None,
        limit: int = MAX_BATCH,
        eager_horizon_ms: int = 0,
        fencing: Fencing = "lease",
    ) -> SweepResult:
        """Move up to `limit` due entries of `stream`'s store into `stream`, in one script.

        `token` is the caller's lease token, checked inside the script (fencing); '' skips the
        check and is only for an operator's move-now. `up_to_ms` None uses the server's time.
        With `fencing="epoch"` (Redis Cluster) `lease_key` is ignored and the token's epoch is
        checked against the store's fence key, which lives in the store's slot.
        """
        if not 0 < limit <= MAX_BATCH:
            raise ValueError(f"limit {limit}: expected 1..{MAX_BATCH}")
        status, moved, next_release, now_ms = await scripts.load("delayed_sweep")(
            self.redis,
            [
                keys.delayed_fence(stream) if fencing == "epoch" else lease_key,
                keys.delayed_store(stream),
                stream,
            ],
            [token, "" if up_to_ms is None else up_to_ms, limit, eager_horizon_ms, fencing],
        )
        return SweepResult(
            refused=int(status) == 0,
            moved=int(moved),
            next_release_ms=None if int(next_release) < 0 else int(next_release),
            now_ms=int(now_ms),
        )

    async def move_now(self, stream: str, limit: int | None = None) -> int:
        """Release `stream`'s waiting entries into it now, due or not (an operator's action).

        Returns:
            The number of entries moved.
        """
        moved = 0
        while limit is None or moved < limit:
            batch = MAX_BATCH if limit is None else min(MAX_BATCH, limit - moved)
            result = await self.sweep_batch(
                stream,
                token="",
                lease_key=keys.lease("sweeper", self.prefix),
                up_to_ms=FOREVER_MS,
                limit=batch,
            )
            moved += result.moved
            if result.moved < batch:
                break
        return moved

    # -- inspecting --------------------------------------------------------------------------

    async def targets(self) -> list[str]:
        """Every registered target stream, sorted."""
        members = await self.redis.smembers(keys.delayed_targets(self.prefix))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def stats(self, stream: str) -> StoreStats:
        """Counts and the release-time range of `stream`'s store (see `waiting.store_stats`)."""
        return await store_stats(self.redis, stream)

    async def peek(self, stream: str, limit: int = 20) -> list[DelayedEntry]:
        """The first `limit` waiting entries of `stream`, earliest release first."""
        return await peek(self.redis, stream, limit)
