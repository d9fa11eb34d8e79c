"""Helpers for service authors' tests: run an app against a real server until it is idle.

async def test_each_order_is_billed(redis: Redis) -> None:
    await Publisher(redis).publish("orders", Order(id="o-1", sku="tea", quantity=2))
    result = await run_until_idle(billing.app, url=server.url)
    assert [i.order_id for i in await result.published("invoices")] == ["o-1"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from gristmill.clock import FakeClock
from gristmill.connect import unparsed
from gristmill.envelope import open_fields
from gristmill.keys import delayed_store
from gristmill.pipeline.decode import decode
from gristmill.producer import Publisher
from gristmill.runtime import Runtime
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry
from gristmill.settings import Settings

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from redis.asyncio import Redis

    from gristmill.app import App

__all__ = ("FakeClock", "Publisher", "RunResult", "run_until_idle")


@dataclass
class RunResult:
    """What a run left in Redis, read through `redis` (the run's own client is closed)."""

    runtime: Runtime
    redis: Redis

    async def published(self, stream: str) -> list[Message]:
        """Every message in `stream`, oldest first."""
        cache = SchemaCache(SchemaRegistry(self.redis, self.runtime.settings.key_prefix))
        messages = []
        for _, flat in await unparsed(self.redis, stream, b"XRANGE", stream, "-", "+"):
            envelope = open_fields(flat, self.runtime.settings.max_entry_bytes)
            if cache.get(envelope.schema_id) is None:
                await cache.resolve(envelope.schema_id)
            messages.append(decode(envelope, cache))
        return messages


async def _idle(redis: Redis, runtime: Runtime) -> bool:
    """Nothing unread or pending in any input or own lane, and no retry waiting to be swept."""
    for loop in runtime.loops:
        for lane in loop.lanes:
            if await redis.zcard(delayed_store(lane)):
                return False
        for stream in loop.reader.streams:
            for group in await redis.xinfo_groups(stream):
                if group["name"] != loop.reader.group:
                    continue
                if group["pending"] or group.get("lag"):
                    return False
    return True


async def run_until_idle(
    app: App,
    *,
    url: str,
    redis: Redis,
    settings: Settings | None = None,
    limit: float = 30.0,
) -> RunResult:
    """Run every processor of `app` until nothing is pending or unread, then drain.

    Raises:
        TimeoutError: If the app is still busy after `limit` seconds.
    """
    settings = settings or Settings(block_ms=50, claim_idle=5.0, health_port=0)
    runtime = Runtime(app, settings, url)
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        with anyio.fail_after(limit):
            await runtime.wait_ready()
            quiet = 0
            while quiet < 2:  # idle twice in a row: no batch was between reads
                await anyio.sleep(0.05)
                quiet = quiet + 1 if await _idle(redis, runtime) else 0
        runtime.stop()
    return RunResult(runtime, redis)
