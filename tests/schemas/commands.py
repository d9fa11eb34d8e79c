"""Counting commands on the real server: how tests prove "exactly one fetch"."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def command_calls(redis: Redis, command: str) -> int:
    """How many times the server ran `command` since its stats were last reset."""
    stats = await redis.info("commandstats")
    entry = stats.get(f"cmdstat_{command.lower()}")
    return int(entry["calls"]) if entry else 0
