"""One real server per test session (the same launcher as `runtime serve`), flushed per test."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
import redis as sync_redis
from click.testing import CliRunner
from redis.asyncio import Redis

from gristmill.embedded import EmbeddedServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

# runtimes started by tests (in-process or `runtime serve` children) open no health port
# unless a test asks for one: parallel runs must not fight over the default port 8080
os.environ.setdefault("GRISTMILL_HEALTH_PORT", "0")


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


@pytest.fixture
def db(server: EmbeddedServer) -> Iterator[sync_redis.Redis]:
    """A synchronous client on a flushed server, for tests that drive the CLI."""
    client = sync_redis.Redis.from_url(server.url)
    client.execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cli(server: EmbeddedServer) -> CliRunner:
    """Runs `runtime` commands in-process against the test server, with a wide console."""
    return CliRunner(env={"GRISTMILL_REDIS_URL": server.url, "COLUMNS": "200"})
