"""Feeding `tests.bridges.bridge_app` (channel `in` -> stream `ingest`) from a test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from redis.asyncio import Redis

CHANNEL, STREAM = "in", "ingest"


async def publish_until(redis: Redis, entries: int, within: float = 30) -> int:
    """Publish distinct messages (redundant mode deduplicates equal ones) until `STREAM`
    holds `entries`; returns how many were published."""
    sent = 0
    with anyio.fail_after(within):
        while await redis.xlen(STREAM) < entries:
            sent += 1
            await redis.publish(CHANNEL, f'{{"n": {sent}}}'.encode())
            await anyio.sleep(0.005)
    return sent
