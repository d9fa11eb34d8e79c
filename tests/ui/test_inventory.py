"""The dashboard's slower panels with something in them: a delayed entry, a task, a schedule
and a schema, read back through `Dashboard.inventory` from the real server."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gristmill import App
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry
from gristmill.settings import Settings
from gristmill.tasks.schedules import Schedules
from gristmill.timing.delayed import DelayedStore
from gristmill.ui.gather import Dashboard

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

SETTINGS = Settings(block_ms=50, health_port=0)


async def test_the_inventory_shows_stores_tasks_schedules_and_schemas(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("shop")

    @app.task(queue="mail")
    async def send(recipient: str) -> None:
        """Send one mail."""

    due_ms = int(time.time() * 1000) + 60_000
    await DelayedStore(redis).schedule(
        "orders", [b"schema_id", b"s" * 18, b"payload", b"p"], due_ms
    )
    async with app.connected(url=server.url, settings=SETTINGS):
        await send.enqueue_as("mail-1", "ada@example.com")
    cache = SchemaCache(SchemaRegistry(redis))
    await Schedules(redis, cache).add("nightly", send, cron="0 3 * * *", kwargs={"recipient": "x"})
    dashboard = Dashboard(redis, SETTINGS)
    await dashboard.refresh()

    inventory = await dashboard.inventory()
    print(inventory)  # noqa: T201 - what the page was given, for the record (pytest -s)

    stores = {s["stream"]: s for s in inventory["delayed"]}
    store = stores["orders"]
    assert (store["entries"], store["buckets"]) == (1, 1)
    assert 55_000 <= store["next_due_in_ms"] <= 61_000  # released at its 1 s bucket's end
    (task,) = inventory["tasks"]
    assert (task["id"], task["name"], task["queue"], task["state"]) == (
        "mail-1", "send", "mail", "queued",
    )  # fmt: skip
    (schedule,) = inventory["schedules"]
    assert (schedule["name"], schedule["when"], schedule["paused"]) == (
        "nightly",
        "0 3 * * *",
        False,
    )
    assert schedule["next_fire_ms"] > time.time() * 1000
    (subject,) = inventory["schemas"]  # the task's arguments, registered at enqueue
    assert (subject["subject"], subject["mode"]) == ("gristmill.tasks.SendArgs", "BACKWARD")
    assert [v["version"] for v in subject["versions"]] == [1]
