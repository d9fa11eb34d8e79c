"""`runtime schedules list | add | pause | resume | remove | trigger`: schedules in Redis."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out, print_json, utc_text
from gristmill.cli.serve import load_app, settings_or_fail
from gristmill.errors import ConfigError
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry
from gristmill.tasks.schedules import Schedule, Schedules

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from redis.asyncio import Redis

FIX_NAME = "see the names with `runtime schedules list`"


def _with_schedules(action: Callable[[Schedules], Awaitable[Any]]) -> Any:
    settings = settings_or_fail()

    async def run(redis: Redis) -> Any:
        cache = SchemaCache(SchemaRegistry(redis, settings.key_prefix))
        return await action(Schedules(redis, cache, settings.key_prefix))

    return with_redis(settings, run, announce=False)


def _as_json(schedule: Schedule) -> dict[str, Any]:
    value = dataclasses.asdict(schedule)
    value["schema_id"] = schedule.schema_id.decode(errors="replace")
    value["payload"] = schedule.payload.hex()
    value["next_fire_ms"] = None if schedule.paused else schedule.next_fire_ms()
    return value


@click.group()
def schedules() -> None:
    """Schedules: list them; add, pause, resume, remove or trigger one, while services run."""


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def list_schedules(as_json: bool) -> None:
    """Every schedule, its timetable, last and next fire."""
    found: list[Schedule] = _with_schedules(lambda s: s.all())
    if as_json:
        print_json([_as_json(schedule) for schedule in found])
        return
    if not found:
        out.print("no schedules")
        return
    table = Table("name", "task", "queue", "when", "tz", "state", "last fire", "next fire", "fires")
    for s in found:
        when = s.cron or f"every {s.every_ms / 1000:g} s"
        table.add_row(
            escape(s.name), escape(s.task), escape(s.queue), escape(when), s.tz,
            "paused" if s.paused else "active", utc_text(s.last_fire_ms, timespec="seconds"),
            "-" if s.paused else utc_text(s.next_fire_ms(), timespec="seconds"), str(s.fires),
        )  # fmt: skip
    out.print(table)


@schedules.command()
@click.argument("name")
@click.argument("target")
@click.argument("task")
@click.option("--cron", help="A 5-field cron expression, read in --tz.")
@click.option("--every", type=click.FloatRange(min=0.001), help="Seconds between fires.")
@click.option("--tz", default="UTC", show_default=True, help="The IANA zone of --cron.")
@click.option("--args", "arguments", default="{}", help="The task's keyword arguments, as JSON.")
@click.option("--catch-up", type=click.IntRange(min=0), default=0, show_default=True,
              help="Missed times fired after an outage (0: only the latest).")  # fmt: skip
def add(
    name: str,
    target: str,
    task: str,
    cron: str | None,
    every: float | None,
    tz: str,
    arguments: str,
    catch_up: int,
) -> None:
    """Add schedule NAME (or replace its timetable) firing TASK of the app TARGET
    (package.module:app), which gives the task's argument types."""
    try:
        app = load_app(target)
        kwargs = json.loads(arguments)
    except ConfigError as exc:
        fail(str(exc), "check the app path")
    except json.JSONDecodeError as exc:
        fail(f"--args is not JSON: {exc}", 'give an object, e.g. --args \'{"month": "2026-11"}\'')
    if task not in app.tasks:
        fail(f"{target} has no task {task!r}", f"it has {', '.join(sorted(app.tasks)) or 'none'}")
    interval = timedelta(seconds=every) if every is not None else None

    async def write(store: Schedules) -> Schedule:
        return await store.add(
            name, app.tasks[task], cron=cron, every=interval, tz=tz, kwargs=kwargs,
            catch_up=catch_up,
        )  # fmt: skip

    try:
        added: Schedule = _with_schedules(write)
    except (ConfigError, TypeError) as exc:
        fail(str(exc), "see `runtime schedules add --help`")
    next_fire = utc_text(added.next_fire_ms(), timespec="seconds")
    out.print(f"schedule {escape(name)} fires {escape(task)}; next {next_fire}")


def _change(name: str, verb: str, action: Callable[[Schedules], Awaitable[object]]) -> None:
    outcome = _with_schedules(action)
    if not outcome:
        fail(f"no schedule {name!r}", FIX_NAME)
    out.print(
        f"schedule {escape(name)} {verb}"
        + (f": task {outcome}" if isinstance(outcome, str) else "")
    )


@schedules.command()
@click.argument("name")
def pause(name: str) -> None:
    """Stop firing NAME until `resume`."""
    _change(name, "paused", lambda s: s.pause(name))


@schedules.command()
@click.argument("name")
def resume(name: str) -> None:
    """Fire NAME again from now on (the times passed while paused do not fire)."""
    _change(name, "resumed", lambda s: s.resume(name))


@schedules.command()
@click.argument("name")
def remove(name: str) -> None:
    """Delete NAME (tasks it enqueued already stay). A schedule declared in code comes back
    when its service starts again: remove it from the code too."""
    _change(name, "removed", lambda s: s.remove(name))


@schedules.command()
@click.argument("name")
def trigger(name: str) -> None:
    """Enqueue one run of NAME now, outside its timetable."""
    _change(name, "triggered", lambda s: s.trigger(name))
