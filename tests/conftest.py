"""One real server per test session (the same launcher as `runtime serve`), flushed per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from gristmill.embedded import EmbeddedServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer.start(tmp_path_factory.mktemp("valkey")) as running:
        yield running


@pytest.fixture
async def redis(server: EmbeddedServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(server.url)
    # SYNC: a plain FLUSHALL may free lazily (Valkey 8) and leak into the next test's memory
    await client.execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        await client.aclose()
