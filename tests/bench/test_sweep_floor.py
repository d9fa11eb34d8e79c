"""The sweep bench's floor rows: XADD only, with the append-only file as configured and off.

The floor is what no sweep can beat on the same server, so it must add exactly the entries
it counts, and switching the AOF off for its row must leave the server as it found it (on,
with the rewrite that switching it back on starts finished before the next phase).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from bench.scenarios import sweep
from gristmill.embedded import EmbeddedServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    Floor = Callable[[Redis, int], Awaitable[tuple[float, float]]]

ENTRIES = 2500  # not a multiple of 1,000: the last call adds the remainder


@pytest.mark.parametrize("floor", [sweep._floor, sweep._floor_without_aof], ids=["aof", "no-aof"])
async def test_the_floor_adds_every_entry_and_leaves_the_aof_on(
    tmp_path: Path, floor: Floor
) -> None:
    with EmbeddedServer.start(tmp_path) as server:  # its own: the AOF is switched off and on
        redis = Redis.from_url(server.url)
        try:
            assert await sweep._appendonly(redis)
            per_s, server_per_s = await floor(redis, ENTRIES)

            assert await redis.xlen(sweep.TARGET) == ENTRIES
            assert per_s > 0
            assert server_per_s > 0
            assert await sweep._appendonly(redis)
            persistence = await redis.info("persistence")
            assert persistence["aof_enabled"] == 1
            assert persistence["aof_rewrite_in_progress"] == 0
        finally:
            await redis.aclose()
