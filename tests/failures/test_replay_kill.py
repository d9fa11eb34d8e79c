"""kill -9 of `runtime dlq replay` at any point loses and doubles nothing: every id is counted."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from gristmill import keys
from tests.helpers.ledger import Ledger
from tests.helpers.procs import python_module

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

pytestmark = [pytest.mark.slow, pytest.mark.fault]

DEAD = keys.dead_lane("orders", "billing")
RETRY = keys.retry_lane("orders", "billing")
ENTRIES = 30_000


async def ids_in(redis: Redis, key: str) -> list[str]:
    reply = await redis.execute_command(b"XRANGE", key, "-", "+")  # type: ignore[no-untyped-call]
    return [
        dict(zip(fields[::2], fields[1::2], strict=True))[b"h:n"].decode() for _, fields in reply
    ]


async def fill(redis: Redis, ledger: Ledger[str]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(ENTRIES):
            key = str(n)
            ledger.attempt(key)
            pipe.execute_command(
                "XADD", DEAD, "*", "payload", b"\x08\x01", "h:n", key, "dl:reason", "handler"
            )
        await pipe.execute()
    ledger.acked |= ledger.attempted


async def test_kill9_during_replay_leaves_each_entry_in_exactly_one_lane(
    server: EmbeddedServer, redis: Redis
) -> None:
    ledger: Ledger[str] = Ledger()
    await fill(redis, ledger)
    env = {"GRISTMILL_REDIS_URL": server.url}
    mid_replay_kills = 0
    for threshold in (1, ENTRIES // 3, ENTRIES // 2):  # kill points: first batch .. halfway
        with python_module("gristmill", "dlq", "replay", "orders", "billing", env=env) as replay:
            deadline = time.monotonic() + 60
            while await redis.xlen(RETRY) < threshold and replay.alive:
                assert time.monotonic() < deadline, replay.output
                await asyncio.sleep(0.002)
            replay.kill9()
        moved = await redis.xlen(RETRY)
        if moved < ENTRIES:
            mid_replay_kills += 1
        verdict = ledger.check(
            observed=await ids_in(redis, RETRY), dead_lettered=await ids_in(redis, DEAD)
        )
        assert verdict.lost == frozenset(), verdict.summary()
        assert verdict.duplicated == {}, verdict.summary()
        assert verdict.unexpected == frozenset(), verdict.summary()
    assert mid_replay_kills >= 1  # at least one kill landed while entries were still moving
    with python_module("gristmill", "dlq", "replay", "orders", "billing", env=env) as finish:
        assert finish.wait_for_line(r"^moved \d+ entries", within=120)
    assert await redis.xlen(DEAD) == 0
    final = ledger.check(observed=await ids_in(redis, RETRY))
    assert final.ok, final.summary()
    assert final.duplicated == {}
    assert sorted(await ids_in(redis, RETRY), key=int) == [str(n) for n in range(ENTRIES)]
