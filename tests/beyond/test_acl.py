"""`runtime acl`: least-privilege users derived from the App, run for real on a private server.

The example services run end to end (with a dead letter and a scheduled order the sweeper
moves) under the users `runtime acl` printed: the server logs no denial, and ACL DRYRUN shows
each user refused FLUSHALL, XGROUP DESTROY and writes to the other service's streams.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from gristmill.acl import escape_glob, service_grant, setuser_line, sweeper_grant
from gristmill.embedded import EmbeddedServer
from gristmill.producer import Publisher
from gristmill.settings import Settings
from gristmill.tasks.schedules import Schedules
from services.orders import app as orders_app
from services.payments import app as payments_app
from tests.apps import fifo_tasks, retry_relay, slow_tasks
from tests.bridges.feed import publish_until
from tests.delivery import order, pipeline_idle, place_orders
from tests.helpers.procs import Proc, python_module, serve
from tests.pipeline.messages import Order
from tests.typed_redis import raw

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

PASSWORD = "s3cret-for-tests"
SERVICES = {"orders": "services.orders:app", "payments": "services.payments:app"}


def runtime_acl(*args: str) -> str:
    """The line `runtime acl` prints, as a user would copy it."""
    done = subprocess.run(
        [sys.executable, "-m", "gristmill", "acl", *args, "--password", PASSWORD],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    (line,) = done.stdout.strip().splitlines()
    return line


def test_the_orders_user_is_its_streams_lanes_and_registry_entries() -> None:
    grant = service_grant(orders_app)
    streams = {"orders.placed", "orders.valid", "invoices"}
    assert streams <= set(grant.keys)
    assert "receipts" not in grant.keys  # payments' output
    assert "{orders.placed}:retry:orders.validate:delayed:*" in grant.keys
    assert "{invoices}:retry:payments.charge" not in grant.keys
    assert all(not key.startswith("gm:lease") for key in grant.keys)  # no sweeper in services
    assert grant.channels == ("gm:delayed:wake",)
    assert not {"flushall", "xgroup|destroy", "xdel", "xtrim", "keys", "scan"} & set(grant.commands)
    # retention is the only reason for XTRIM; the example services keep everything
    assert "xtrim" not in grant.commands


def test_patterns_match_only_the_name_and_the_password_is_hashed() -> None:
    assert escape_glob("odd*name[1]?") == "odd\\*name\\[1\\]\\?"
    line = setuser_line("svc", service_grant(payments_app), "pw")
    assert "pw" not in line.split()
    assert line.startswith("ACL SETUSER svc reset on #")
    assert " ~receipts " in f"{line} "
    sweeper = sweeper_grant([orders_app, payments_app])
    assert "gm:lease:sweeper" in sweeper.keys
    assert "xreadgroup" not in sweeper.commands


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A private server: users and the ACL LOG must not leak into other tests."""
    with EmbeddedServer.start(tmp_path_factory.mktemp("acl")) as running:
        yield running


@pytest.fixture
async def admin(acl_server: EmbeddedServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(acl_server.url)
    await raw(client, "FLUSHALL", "SYNC")
    await raw(client, "ACL", "LOG", "RESET")
    lines = [runtime_acl(target) for target in SERVICES.values()]
    lines.append(runtime_acl("--sweeper", *SERVICES.values()))
    for line in lines:
        await raw(client, *line.split())
    try:
        yield client
    finally:
        await client.aclose()


def _url(server: EmbeddedServer, user: str) -> str:
    return f"redis://{user}:{PASSWORD}@127.0.0.1:{server.port}/0"


@pytest.mark.slow
async def test_the_example_services_run_under_their_generated_users(
    acl_server: EmbeddedServer, admin: Redis, tmp_path: Path
) -> None:
    def env(user: str) -> dict[str, str]:
        return {"GRISTMILL_REDIS_URL": _url(acl_server, user), "GRISTMILL_SWEEPER": "false",
                "GRISTMILL_BLOCK_MS": "200", "GRISTMILL_DATA_DIR": str(tmp_path)}  # fmt: skip

    with (
        serve(SERVICES["orders"], env=env("orders")) as orders,
        serve(SERVICES["payments"], env=env("payments")) as payments,
        python_module("gristmill", "sweep", env=env("sweeper")) as sweeper,
    ):
        await _groups_exist(admin, (orders, payments, sweeper))
        await place_orders(admin, range(200))
        publisher = Publisher(admin)
        await publisher.publish("orders.placed", type(order(0))(id="empty"))  # dead-lettered
        await publisher.schedule("orders.placed", order(200), delay=0.2)  # the sweeper's
        with anyio.fail_after(60):
            while await admin.xlen("receipts") < 201 or not await pipeline_idle(admin):
                await anyio.sleep(0.1)
        codes = [await p.terminate_async() for p in (orders, payments, sweeper)]
    assert codes == [0, 0, 0], orders.output + payments.output + sweeper.output
    assert await admin.xlen("{orders.placed}:dead:orders.validate") == 1
    assert await raw(admin, "ACL", "LOG") == []


@pytest.mark.slow
async def test_retries_pass_the_delayed_store_and_the_sweeper_under_their_users(
    acl_server: EmbeddedServer, admin: Redis, tmp_path: Path
) -> None:
    target = "tests.apps.retry_relay:app"
    for line in (runtime_acl(target), runtime_acl("--sweeper", target)):
        await raw(admin, *line.split())
    env = {"GRISTMILL_SWEEPER": "false", "GRISTMILL_BLOCK_MS": "200",
           "GRISTMILL_DATA_DIR": str(tmp_path)}  # fmt: skip
    with (
        serve(target, env={**env, "GRISTMILL_REDIS_URL": _url(acl_server, "retry_relay")}) as app,
        python_module(
            "gristmill", "sweep", env={**env, "GRISTMILL_REDIS_URL": _url(acl_server, "sweeper")}
        ) as sweeper,
    ):
        publisher = Publisher(admin)
        for n in range(20):
            await publisher.publish(retry_relay.INPUT, Order(id=f"r-{n}", sku="tea", quantity=n))
        with anyio.fail_after(60):
            while await admin.xlen(retry_relay.OUTPUT) < 20:
                assert app.alive, app.output
                await anyio.sleep(0.1)
        codes = [await app.terminate_async(), await sweeper.terminate_async()]
    assert codes == [0, 0], app.output + sweeper.output
    assert await raw(admin, "ACL", "LOG") == []


async def _groups_exist(admin: Redis, procs: tuple[Proc, ...]) -> None:
    with anyio.fail_after(30):
        while True:
            for proc in procs:
                assert proc.alive, proc.output
            if await admin.exists("orders.placed", "orders.valid", "invoices") == 3:
                groups = [await admin.xinfo_groups(s) for s in ("orders.valid", "invoices")]
                if all(groups):
                    return
            await anyio.sleep(0.1)


@pytest.mark.parametrize(
    ("user", "command"),
    [
        ("orders", ["FLUSHALL"]),
        ("orders", ["XGROUP", "DESTROY", "orders.placed", "orders.validate"]),
        ("orders", ["XADD", "receipts", "*", "f", "v"]),
        ("orders", ["XADD", "{invoices}:retry:payments.charge", "*", "f", "v"]),
        ("payments", ["FLUSHALL"]),
        ("payments", ["XGROUP", "DESTROY", "invoices", "payments.charge"]),
        ("payments", ["XADD", "orders.valid", "*", "f", "v"]),
        ("payments", ["XADD", "orders.placed", "*", "f", "v"]),
        ("payments", ["XDEL", "receipts", "0-1"]),
        ("sweeper", ["FLUSHALL"]),
        ("sweeper", ["XGROUP", "DESTROY", "invoices", "payments.charge"]),
        ("sweeper", ["XADD", "receipts", "*", "f", "v"]),
    ],
)
async def test_dry_runs_refuse_what_a_user_was_not_given(
    admin: Redis, user: str, command: list[str]
) -> None:
    verdict = await raw(admin, "ACL", "DRYRUN", user, *command)
    assert verdict != b"OK"
    assert b"no permissions" in verdict


@pytest.mark.parametrize(
    ("user", "command"),
    [
        ("orders", ["XADD", "invoices", "*", "f", "v"]),
        ("payments", ["XADD", "receipts", "*", "f", "v"]),
        ("sweeper", ["XADD", "{invoices}:retry:payments.charge", "*", "f", "v"]),
    ],
)
async def test_dry_runs_allow_what_each_user_needs(
    admin: Redis, user: str, command: list[str]
) -> None:
    assert await raw(admin, "ACL", "DRYRUN", user, *command) == b"OK"


@pytest.mark.slow
async def test_tasks_run_and_defer_under_their_generated_user(
    acl_server: EmbeddedServer, admin: Redis, tmp_path: Path
) -> None:
    target = "tests.apps.slow_tasks:app"
    for line in (runtime_acl(target), runtime_acl("--sweeper", target)):
        await raw(admin, *line.split())
    env = {"GRISTMILL_SWEEPER": "false", "GRISTMILL_BLOCK_MS": "200",
           "GRISTMILL_DATA_DIR": str(tmp_path)}  # fmt: skip
    user_url = _url(acl_server, "slow_tasks")
    with (
        serve(target, env={**env, "GRISTMILL_REDIS_URL": user_url}) as worker,
        python_module(
            "gristmill", "sweep", env={**env, "GRISTMILL_REDIS_URL": _url(acl_server, "sweeper")}
        ) as sweeper,
    ):
        settings = Settings(redis_url=SecretStr(user_url), sweeper=False, health_port=0)
        async with slow_tasks.app.connected(settings=settings) as client:
            handles = await slow_tasks.double.enqueue_many({"n": n} for n in range(50))
            handles.append(await slow_tasks.double.defer(0.2, 50))
            results = [await handle.result(timeout=60) for handle in handles]
            assert await handles[0].cancel() is False
            # the worker's runtime holds the scheduler lease and fires under the same user
            schedules = Schedules(admin, client.cache)
            every = timedelta(milliseconds=200)
            await schedules.add("acl-tick", slow_tasks.double, every=every, kwargs={"n": 1})
            with anyio.fail_after(30):
                while not (found := await schedules.get("acl-tick")) or found.fires < 2:
                    await anyio.sleep(0.1)
        codes = [await worker.terminate_async(), await sweeper.terminate_async()]
    assert results == [2 * n for n in range(51)]
    assert codes == [0, 0], worker.output + sweeper.output
    assert await raw(admin, "ACL", "LOG") == []


@pytest.mark.slow
async def test_a_fifo_queue_runs_under_its_generated_user(
    acl_server: EmbeddedServer, admin: Redis, tmp_path: Path
) -> None:
    target = "tests.apps.fifo_tasks:app"
    await raw(admin, *runtime_acl(target).split())
    env = {"GRISTMILL_SWEEPER": "false", "GRISTMILL_BLOCK_MS": "200",
           "GRISTMILL_DATA_DIR": str(tmp_path)}  # fmt: skip
    user_url = _url(acl_server, "fifo_tasks")
    with serve(target, env={**env, "GRISTMILL_REDIS_URL": user_url}) as worker:
        settings = Settings(redis_url=SecretStr(user_url), sweeper=False, health_port=0)
        async with fifo_tasks.app.connected(settings=settings):
            handles = await fifo_tasks.step.enqueue_many({"n": n} for n in range(100))
            keyed = await fifo_tasks.post.enqueue_many(
                {"account": f"a{n % 3}", "n": n} for n in range(30)
            )
            ended = [await handle.result(timeout=60) for handle in handles + keyed]
        assert await worker.terminate_async() == 0, worker.output
    assert ended[:100] == sorted(ended[:100])
    assert await raw(admin, "ACL", "LOG") == []


@pytest.mark.parametrize("redundant", ["0", "1"])
async def test_a_bridge_runs_under_its_generated_user(
    acl_server: EmbeddedServer, admin: Redis, tmp_path: Path, redundant: str
) -> None:
    """Its lease (single mode) or dedup window (redundant), its channel and its stream."""
    target = "tests.bridges.bridge_app:app"
    await raw(admin, *runtime_acl(target).split())
    env = {"GRISTMILL_SWEEPER": "false", "GRISTMILL_DATA_DIR": str(tmp_path),
           "GRISTMILL_REDIS_URL": _url(acl_server, "bridged"), "BRIDGE_REDUNDANT": redundant}  # fmt: skip
    with serve(target, env=env) as worker:
        await worker.wait_for_line_async("bridge in:", within=60)
        await publish_until(admin, 100)
        assert await worker.terminate_async() == 0, worker.output
    assert await raw(admin, "ACL", "LOG") == []
