"""Upkeep off the hot path: trimming output streams safely and forgetting dead consumers.

Runs every few seconds in each runtime (replicas repeat it harmlessly: both scripts are
idempotent). Trimming never removes an entry some group has not delivered and acked
(trim_consumed.lua); a consumer is deleted only when it holds nothing pending
(forget_consumer.lua), because XGROUP DELCONSUMER drops pending entries for good.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gristmill import scripts
from gristmill.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from redis.asyncio import Redis

log = logging.getLogger(__name__)

TRIM = scripts.load("trim_consumed")
FORGET = scripts.load("forget_consumer")
KEEP_CLAIMED = scripts.load("keep_claimed")


@dataclass(frozen=True)
class Retention:
    """How much of a stream to keep: at most about `maxlen` entries and/or `min_age` seconds."""

    maxlen: int = 0  # 0: no length limit
    min_age: float = 0.0  # seconds; 0: no age limit

    @property
    def active(self) -> bool:
        return self.maxlen > 0 or self.min_age > 0


async def trim(redis: Redis, stream: str, retention: Retention, clock: Clock = SYSTEM_CLOCK) -> int:
    """Trim `stream` to its retention without dropping entries a group still needs."""
    return await trim_all(redis, {stream: retention}, clock)


async def trim_all(
    redis: Redis, retention: Mapping[str, Retention], clock: Clock = SYSTEM_CLOCK
) -> int:
    """`trim` every stream of `retention` in one round trip; the entries removed in all."""
    now_ms = clock.now_ms()
    calls = [
        ([stream], [keep.maxlen, round(keep.min_age * 1000), now_ms])
        for stream, keep in retention.items()
    ]
    return sum(int(removed) for removed in await TRIM.many(redis, calls))


async def forget_idle_consumers(
    redis: Redis, groups: Sequence[tuple[str, str, int]], only: str = ""
) -> list[str]:
    """Delete consumers idle for `min_idle_ms` that hold nothing pending, of every
    (stream, group, min_idle_ms) in one round trip; `only`: just that consumer (not logged).
    """
    calls: list[tuple[list[str], list[str | int]]] = [
        ([stream], [group, min_idle_ms, only]) for stream, group, min_idle_ms in groups
    ]
    forgotten = []
    for (stream, group, _), deleted in zip(groups, await FORGET.many(redis, calls), strict=True):
        names = [name.decode() if isinstance(name, bytes) else str(name) for name in deleted]
        if names and not only:
            log.info(
                "forgot %d idle consumers with nothing pending: %s", len(names), names,
                extra={"stream": stream, "group": group},
            )  # fmt: skip
        forgotten += names
    return forgotten


async def keep_claimed(
    redis: Redis, stream: str, group: str, consumer: str, entry_ids: list[bytes]
) -> int:
    """Reset the idle time of `entry_ids` still pending for `consumer` (a slow handler's)."""
    return int(await KEEP_CLAIMED(redis, [stream], [group, consumer, *entry_ids]))
