"""`runtime tasks list | show | cancel | retry`: tasks and their records, for people and scripts."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from gristmill import keys
from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out, print_json, utc_text
from gristmill.cli.serve import settings_or_fail
from gristmill.errors import DecodeError
from gristmill.schemas.decoding import decode
from gristmill.tasks import inspect
from gristmill.tasks.client import CANCEL, RETRY
from gristmill.tasks.record import STATES

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.tasks.record import TaskRecord


def _short(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M:%S") if ms else "-"


def _as_json(record: TaskRecord, arguments: Any = None) -> dict[str, Any]:
    value = dataclasses.asdict(record)
    value["schema_id"] = record.schema_id.decode(errors="replace")
    value["payload"] = None if arguments is None else arguments
    value["result"] = json.loads(record.result) if record.result else None
    return value


@click.group()
def tasks() -> None:
    """Tasks: list them by state, queue, target or name; show one; cancel or retry it."""


@tasks.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only tasks in this state.")
@click.option("--queue", help="Only tasks of this queue.")
@click.option("--target", help="Only tasks addressed to this target.")
@click.option("--name", help="Only tasks of this name (the function's).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def list_tasks(
    state: str | None,
    queue: str | None,
    target: str | None,
    name: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The newest tasks (by creation time) that match every filter given."""
    settings = settings_or_fail()
    filters = {"state": state, "queue": queue, "target": target, "name": name}
    found = with_redis(
        settings,
        lambda redis: inspect.listing(
            redis, prefix=settings.key_prefix, filters=filters, limit=limit
        ),
        announce=False,
    )
    if as_json:
        print_json([_as_json(record) for record in found])
        return
    if not found:
        out.print("no tasks match")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=36)  # whole, to copy into `tasks show`
    for heading in ("name", "queue", "state", "since (UTC)", "runs", "retries", "error"):
        table.add_column(heading, no_wrap=heading in ("state", "since (UTC)", "runs", "retries"))
    for record in found:
        table.add_row(
            escape(record.id), escape(record.name), escape(record.queue), record.state,
            _short(record.state_at), str(record.attempt),
            f"{record.retries_used}/{record.retries_allowed}", escape(record.error[:60]),
        )  # fmt: skip
    out.print(table)


@tasks.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def show(task_id: str, as_json: bool) -> None:
    """Every field of one task's record: arguments, result, history and reports."""
    settings = settings_or_fail()

    async def read(redis: Redis) -> tuple[TaskRecord | None, Any]:
        found = await inspect.find(redis, task_id, settings.key_prefix)
        if found is None or not found.schema_id:
            return found, None
        fields = [b"schema_id", found.schema_id, b"payload", found.payload]
        try:
            return found, await decode(fields, redis, as_json=True, prefix=settings.key_prefix)
        except DecodeError as exc:
            return found, {"undecodable": str(exc)}

    found, arguments = with_redis(settings, read, announce=False)
    if found is None:
        fail(f"no task {task_id!r}", "check the id (`runtime tasks list`); records are kept for "
             "result_ttl after a task finishes")  # fmt: skip
    if as_json:
        print_json(_as_json(found, arguments))
        return
    table = Table("field", "value", show_header=False)
    for field in dataclasses.fields(found):
        value = getattr(found, field.name)
        if field.name in ("events", "reports", "payload", "schema_id"):
            continue
        if field.name.endswith("_at") and isinstance(value, int):
            value = utc_text(value)
        table.add_row(field.name, escape(str(value)))
    table.add_row("schema_id", escape(found.schema_id.decode(errors="replace")))
    table.add_row("arguments", escape(json.dumps(arguments)))
    out.print(table)
    history = Table("at", "state", "detail", title="history")
    for event in found.events:
        history.add_row(utc_text(event.at_ms), event.state, escape(event.detail))
    out.print(history)
    if found.reports:
        reports = Table("at", "message", title="reports")
        for report in found.reports:
            reports.add_row(utc_text(report.at_ms), escape(report.detail))
        out.print(reports)


def _change(task_id: str, action: str) -> None:
    settings = settings_or_fail()

    async def run(redis: Redis) -> tuple[TaskRecord | None, Any]:
        found = await inspect.find(redis, task_id, settings.key_prefix)
        if found is None:
            return None, None
        stream = keys.task_queue(found.queue, found.target or None)
        record_key = keys.task_record(stream, task_id)
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        if action == "cancel":
            return found, await CANCEL(redis, [record_key], [now_ms])
        return found, await RETRY(redis, [record_key, stream], [now_ms])

    found, outcome = with_redis(settings, run, announce=False)
    if found is None:
        fail(f"no task {task_id!r}", "check the id with `runtime tasks list`")
    if outcome != 1:
        state = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        allowed = "todo or queued" if action == "cancel" else "error, cancelled or expired"
        fail(f"task {task_id} is {state}; {action} needs it {allowed}",
             "see its state with `runtime tasks show ID`")  # fmt: skip
    done = "cancelled" if action == "cancel" else "queued again"
    out.print(f"task {escape(task_id)} {done}")


@tasks.command()
@click.argument("task_id")
def cancel(task_id: str) -> None:
    """Cancel a task that has not started (todo or queued): it is never run."""
    _change(task_id, "cancel")


@tasks.command()
@click.argument("task_id")
def retry(task_id: str) -> None:
    """Run a finished task again (error, cancelled or expired), with its arguments."""
    _change(task_id, "retry")
