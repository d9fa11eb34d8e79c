"""The issue's must-show: a process that never saw Person decodes 10,000 of them, one fetch."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import anyio
import pytest

from tests.schemas.commands import command_calls
from tests.schemas.people import PERSON, ROOT

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

COUNT = 10_000


def _run(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, check=True, timeout=120
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.slow
async def test_a_fresh_process_decodes_ten_thousand_with_one_fetch(
    redis: Redis, server: EmbeddedServer
) -> None:
    produced = await anyio.to_thread.run_sync(
        _run, "tests.schemas.produce_people", server.url, "people", str(COUNT)
    )
    assert await redis.xlen("people") == COUNT
    hgets_before = await command_calls(redis, "hget")
    decoded = await anyio.to_thread.run_sync(
        _run, "tests.schemas.decode_stream", server.url, "people"
    )
    assert await command_calls(redis, "hget") - hgets_before == 1
    assert decoded["registry_fetches"] == 1
    assert decoded["decoded"] == COUNT
    assert decoded["names"] == [PERSON]
    assert decoded["id_sum"] == sum(range(COUNT))
    assert decoded["phones"] == 2 * COUNT
    assert decoded["tags"] == 2 * COUNT
    assert decoded["knew_people"] is False
    assert decoded["in_default_pool"] is False
    assert isinstance(produced["schema_id"], str)
    assert len(produced["schema_id"]) <= 24
