"""The seed workload: a million messages, each processed and requeued with its own delay,
round after round, through the default store and a running sweeper. Every message is seen
exactly the expected number of times: none lost, none doubled."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import anyio
import pytest

from gristmill import keys
from gristmill.clock import SYSTEM_CLOCK
from gristmill.timing.delayed import DelayedStore
from gristmill.timing.leader import Lease
from gristmill.timing.sweeper import Sweeper

if TYPE_CHECKING:
    from redis.asyncio import Redis

MESSAGES = 1_000_000
ROUNDS = 3  # seen 3 times: scheduled once, requeued twice
STREAM = "work"
CHUNK = 50_000

Reply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]


def delay_ms(n: int) -> int:
    return 37 * n % 1500  # each message its own delay, 0-1.5 s


def fields(n: int) -> list[bytes]:
    return [b"schema_id", b"s" * 16, b"payload", b"%d" % n]


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_a_million_messages_requeued_for_rounds_are_each_seen_exactly(
    redis: Redis,
) -> None:
    store = DelayedStore(redis)  # the shipped default layout
    sweeper = Sweeper(redis, store, Lease(redis, "sweeper"))
    seen = bytearray(MESSAGES)
    now = SYSTEM_CLOCK.now_ms()
    for start in range(0, MESSAGES, CHUNK):
        await store.schedule_many(
            (STREAM, fields(n), now + delay_ms(n)) for n in range(start, start + CHUNK)
        )
    total = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweeper.run)
        last = b"0-0"
        with anyio.fail_after(1000):
            while total < MESSAGES * ROUNDS:
                reply = cast("Reply", await redis.xread({STREAM: last}, count=20_000, block=500))
                if not reply:
                    continue
                entries = reply[0][1]
                last = entries[-1][0]
                again = []
                now = SYSTEM_CLOCK.now_ms()
                for _, entry_fields in entries:
                    n = int(entry_fields[b"payload"])
                    seen[n] += 1
                    total += 1
                    if seen[n] < ROUNDS:
                        again.append((STREAM, fields(n), now + delay_ms(n)))
                await store.schedule_many(again)
        await anyio.sleep(2.0)  # a doubled entry would arrive after the count was reached
        tg.cancel_scope.cancel()
    assert await redis.xlen(STREAM) == MESSAGES * ROUNDS
    assert seen == bytearray([ROUNDS]) * MESSAGES
    assert await redis.zcard(keys.delayed_store(STREAM)) == 0
    assert sweeper.counts.moved == MESSAGES * ROUNDS
    assert sweeper.counts.refused == 0
