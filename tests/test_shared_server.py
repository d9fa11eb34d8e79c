"""Processes that share one embedded server: a stable URL, and no one stranded by its owner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis

from gristmill.shared_server import SharedServer, recorded_port
from tests.delivery import GROUPS, place_orders
from tests.helpers.procs import serve

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def test_the_port_is_recorded_and_reused_by_the_next_start(tmp_path: Path) -> None:
    first = SharedServer(tmp_path)
    attached = first.open()
    assert attached.started
    assert attached.fresh
    port = recorded_port(tmp_path)
    assert port is not None
    assert attached.url.endswith(f":{port}/0")
    second = SharedServer(tmp_path)
    assert second.open() == type(attached)(attached.url, started=False, fresh=False)
    second.close()
    first.close()
    again = SharedServer(tmp_path)
    try:
        assert again.open().url == attached.url  # stopped and started: the same URL
    finally:
        again.close()


async def _groups_ready(redis: Redis) -> None:
    with anyio.fail_after(30):
        for stream, group in GROUPS.items():
            while True:
                if await redis.exists(stream):
                    names = [info["name"].decode() for info in await redis.xinfo_groups(stream)]
                    if group in names:
                        break
                await anyio.sleep(0.1)


async def _receipts(redis: Redis, count: int) -> None:
    with anyio.fail_after(60):
        while not await redis.exists("receipts") or await redis.xlen("receipts") < count:
            await anyio.sleep(0.1)


@pytest.mark.fault
async def test_a_service_outlives_the_owner_of_the_server_it_shares(tmp_path: Path) -> None:
    for folder in ("services", "schemas"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    env = {"GRISTMILL_REDIS_URL": "", "GRISTMILL_DATA_DIR": str(tmp_path / "data")}
    with serve("services.orders:app", env=env, cwd=tmp_path) as owner:
        owner.wait_for_line("started embedded server", within=30)
        owner.wait_for_line("serving", within=30)
        with serve("services.payments:app", env=env, cwd=tmp_path) as payments:
            used = payments.wait_for_line("using embedded server", within=30)
            url = json.loads((tmp_path / "data" / "server.json").read_text())["url"]
            assert url in used  # the attached process says which server it uses
            payments.wait_for_line("serving", within=30)
            async with Redis.from_url(url) as redis:
                await _groups_ready(redis)
                await place_orders(redis, range(10))
                await _receipts(redis, 10)
            owner.kill9()  # the server it started dies with it (and flushes its AOF)
            payments.wait_for_line("restarted the embedded server", within=30)
            with serve("services.orders:app", env=env, cwd=tmp_path) as restarted:
                line = restarted.wait_for_line("embedded server", within=30)
                assert url in line  # the same port: nobody dials a stale URL
                restarted.wait_for_line("serving", within=30)
                async with Redis.from_url(url) as redis:
                    await place_orders(redis, range(10, 30))
                    await _receipts(redis, 30)  # published after the restart, processed
                assert await restarted.terminate_async() == 0
            assert await payments.terminate_async() == 0
    said = "\n".join(payments.lines)
    assert said.count("is gone; starting it again") == 1, said  # the outage, logged once
    for message in ("sweeper lease: cannot reach", "wake channel lost", "server trouble"):
        repeats = [line for line in payments.lines if message in line and "recovered" not in line]
        assert len(repeats) <= 1, said
