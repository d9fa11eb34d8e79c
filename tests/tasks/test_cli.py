"""`runtime tasks list | show | cancel | retry` against the real server (sync: the CLI runs its
own event loop; the tasks are made by an app that runs no workers)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio

from gristmill import App
from gristmill.cli import runtime
from gristmill.failures.policy import RetryPolicy
from gristmill.settings import Settings

if TYPE_CHECKING:
    import redis as sync_redis
    from click.testing import CliRunner, Result

    from gristmill.embedded import EmbeddedServer

SETTINGS = Settings(block_ms=50, health_port=0)


def run(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(runtime, list(args), catch_exceptions=False)


def shop() -> tuple[App, Any, Any]:
    app = App("shop")

    @app.task(queue="mail", target="eu", result_ttl=600)
    async def send(recipient: str, tags: list[str]) -> str:
        """Send one mail."""
        return recipient

    @app.task(queue="billing", retry=RetryPolicy(max_attempts=1))
    async def charge(cents: int) -> None:
        raise ValueError(f"card declined for {cents}")

    return app, send, charge


def test_list_show_cancel_and_retry(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    app, send, charge = shop()

    async def enqueue() -> None:
        async with app.connected(url=server.url, settings=SETTINGS):
            await send.enqueue_as("mail-1", "ada@example.com", ["welcome"])
            await send.enqueue_as("mail-2", "bob@example.com", [])
            await charge.enqueue_as("charge-1", 250)

    anyio.run(enqueue)
    listed = json.loads(run(cli, "tasks", "list", "--json").output)
    assert sorted(t["id"] for t in listed) == ["charge-1", "mail-1", "mail-2"]
    only_eu = json.loads(run(cli, "tasks", "list", "--target", "eu", "--json").output)
    assert sorted(t["id"] for t in only_eu) == ["mail-1", "mail-2"]
    table = run(cli, "tasks", "list", "--queue", "billing").output
    assert "charge-1" in table
    assert "mail-1" not in table
    shown = json.loads(run(cli, "tasks", "show", "mail-1", "--json").output)
    assert shown["payload"] == {"recipient": "ada@example.com", "tags": ["welcome"]}
    seeds = (
        "id", "name", "queue", "target", "description", "kind", "state", "state_at",
        "created_at", "updated_at", "retries_allowed", "retries_used", "result", "events",
    )  # fmt: skip
    assert set(seeds) <= set(shown)
    assert (shown["state"], shown["target"], shown["description"]) == (
        "queued",
        "eu",
        "Send one mail.",
    )
    human = run(cli, "tasks", "show", "mail-1").output
    assert "ada@example.com" in human
    assert "history" in human
    assert "queued" in human

    assert "task mail-2 cancelled" in run(cli, "tasks", "cancel", "mail-2").output
    again = cli.invoke(runtime, ["tasks", "cancel", "mail-2"])
    assert again.exit_code == 2
    assert "error: task mail-2 is cancelled; cancel needs it todo or queued" in again.output

    refused = cli.invoke(runtime, ["tasks", "retry", "mail-1"])
    assert refused.exit_code == 2
    assert "retry needs it error, cancelled or expired" in refused.output

    async def work_billing() -> None:
        async with app.running(url=server.url, settings=SETTINGS):
            with anyio.fail_after(10):
                while True:
                    state = await charge.handle("charge-1").state()
                    if state == "error":
                        break
                    await anyio.sleep(0.05)

    anyio.run(work_billing)
    errors = json.loads(run(cli, "tasks", "list", "--state", "error", "--json").output)
    assert [t["id"] for t in errors] == ["charge-1"]
    assert "card declined for 250" in errors[0]["error"]
    assert "queued again" in run(cli, "tasks", "retry", "charge-1").output
    assert db.hget("{gm:tasks:billing}:task:charge-1", "state") == b"queued"
    assert db.xlen("gm:tasks:billing") == 2  # the first entry, and the one queued by hand

    missing = cli.invoke(runtime, ["tasks", "show", "nope"])
    assert missing.exit_code == 2
    assert "error: no task 'nope'" in missing.output


def test_schedules_commands(cli: CliRunner, db: sync_redis.Redis) -> None:
    add = ["schedules", "add", "dbl", "tests.apps.slow_tasks:app", "double"]
    added = run(cli, *add, "--cron", "0 2 * * *", "--tz", "Europe/Berlin", "--args", '{"n": 3}')
    assert "schedule dbl fires double; next 20" in added.output
    (listed,) = json.loads(run(cli, "schedules", "list", "--json").output)
    assert (listed["cron"], listed["tz"], listed["paused"], listed["fires"]) == (
        "0 2 * * *", "Europe/Berlin", False, 0,
    )  # fmt: skip
    assert listed["next_fire_ms"] % 3_600_000 == 0  # 02:00 Berlin is a whole UTC hour
    assert "dbl" in run(cli, "schedules", "list").output
    assert "paused" in run(cli, "schedules", "pause", "dbl").output
    assert json.loads(run(cli, "schedules", "list", "--json").output)[0]["paused"] is True
    assert "resumed" in run(cli, "schedules", "resume", "dbl").output
    triggered = run(cli, "schedules", "trigger", "dbl").output
    assert "triggered: task dbl@manual-" in triggered
    task_id = triggered.rsplit("task ", 1)[1].strip()
    shown = json.loads(run(cli, "tasks", "show", task_id, "--json").output)
    assert (shown["kind"], shown["schedule"], shown["payload"]) == ("scheduled", "dbl", {"n": "3"})
    assert "removed" in run(cli, "schedules", "remove", "dbl").output
    gone = cli.invoke(runtime, ["schedules", "pause", "dbl"])
    assert gone.exit_code == 2
    assert "error: no schedule 'dbl'" in gone.output
    bad = cli.invoke(runtime, [*add, "--cron", "61 * * * *"])
    assert bad.exit_code == 2
    assert "error: cron '61 * * * *'" in bad.output
    wrong = cli.invoke(runtime, [*add[:-1], "triple", "--every", "5"])
    assert wrong.exit_code == 2
    assert "has no task 'triple'" in wrong.output
    missing = cli.invoke(runtime, [*add, "--every", "5"])
    assert missing.exit_code == 2
    assert "missing argument 'n'" in missing.output


def test_newest_reads_the_last_entries_of_each_queue_not_every_record(
    db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    from redis.asyncio import Redis

    from gristmill.tasks import inspect

    app, send, charge = shop()

    async def enqueue_and_read() -> tuple[list[str], list[str]]:
        async with app.connected(url=server.url, settings=SETTINGS):
            for n in range(5):
                await send.enqueue_as(f"mail-{n}", f"{n}@example.com", [])
            await charge.enqueue_as("charge-1", 250)
        redis = Redis.from_url(server.url)
        try:
            two = await inspect.newest(redis, limit=2)
            every = await inspect.newest(redis, limit=50)
        finally:
            await redis.aclose()
        return [t.id for t in two], [t.id for t in every]

    two, every = anyio.run(enqueue_and_read)
    # newest first by creation time; at most `limit`, each task once
    assert two == ["charge-1", "mail-4"]
    assert every == ["charge-1", "mail-4", "mail-3", "mail-2", "mail-1", "mail-0"]
