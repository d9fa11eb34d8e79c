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
    assert "charge-1" in table and "mail-1" not in table
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
    assert "ada@example.com" in human and "history" in human and "queued" in human

    assert "task mail-2 cancelled" in run(cli, "tasks", "cancel", "mail-2").output
    again = cli.invoke(runtime, ["tasks", "cancel", "mail-2"])
    assert again.exit_code == 2
    assert "error: task mail-2 is cancelled; cancel needs it todo or queued" in again.output

    refused = cli.invoke(runtime, ["tasks", "retry", "mail-1"])
    assert refused.exit_code == 2 and "retry needs it error, cancelled or expired" in refused.output

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
    assert missing.exit_code == 2 and "error: no task 'nope'" in missing.output
