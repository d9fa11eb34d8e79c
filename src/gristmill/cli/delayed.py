"""`runtime delayed stats | list | move-now`: what waits in the delayed stores, and releasing it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from gristmill import keys
from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out, print_json, utc_text
from gristmill.cli.serve import settings_or_fail
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.decoding import entry_json
from gristmill.schemas.registry import SchemaRegistry
from gristmill.timing.delayed import DelayedStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gristmill.timing.waiting import DelayedEntry, StoreStats

T = TypeVar("T")


def _with_store(action: Callable[[DelayedStore], Awaitable[T]]) -> T:
    settings = settings_or_fail()
    return with_redis(
        settings,
        lambda redis: action(DelayedStore.from_settings(redis, settings)),
        announce=False,
    )


@click.group()
def delayed() -> None:
    """Entries waiting in the delayed stores: count them, list them, release them now."""


@delayed.command()
@click.argument("streams", nargs=-1)
@click.option("--all", "show_all", is_flag=True, help="Also list registered stores that are empty.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def stats(streams: tuple[str, ...], show_all: bool, as_json: bool) -> None:
    """Waiting entries per target stream: every registered store that holds entries (with
    --all, the empty ones too, such as retry lanes of past failures), or the STREAMS given."""

    async def collect(store: DelayedStore) -> tuple[list[StoreStats], str | None]:
        targets = list(streams) or await store.targets()
        leader = await store.redis.get(keys.lease("sweeper", store.prefix))
        found = [await store.stats(stream) for stream in targets]
        if not (streams or show_all):
            found = [s for s in found if s.entries]
        return found, leader.decode() if isinstance(leader, bytes) else None

    found, leader = _with_store(collect)
    if as_json:
        print_json(
            {
                "sweeper_leader": leader,
                "stores": [
                    {
                        "stream": s.stream,
                        "entries": s.entries,
                        "buckets": s.buckets,
                        "earliest_release_ms": s.earliest_release_ms,
                        "latest_release_ms": s.latest_release_ms,
                    }
                    for s in found
                ],
            }
        )
        return
    table = Table("stream", "entries", "buckets", "earliest release (UTC)", "latest release (UTC)")
    for s in found:
        table.add_row(
            escape(s.stream),
            str(s.entries),
            str(s.buckets),
            utc_text(s.earliest_release_ms),
            utc_text(s.latest_release_ms),
        )
    if found:
        out.print(table)
    else:
        out.print(
            "nothing waits in any delayed store" + ("" if show_all else " (--all lists empty ones)")
        )
    out.print(f"sweeper leader: {escape(leader) if leader else 'none (no sweeper running)'}")


def _entry_json(entry: DelayedEntry, line: dict[str, Any]) -> dict[str, Any]:
    # `line` is entry_json's: schema_id as text, the payload decoded through the registry
    # (or why it does not decode), and the other fields as text, as `runtime tail` shows them
    del line["id"]
    return {"release_ms": entry.release_ms, **line}


@delayed.command("list")
@click.argument("stream")
@click.option("--limit", default=20, show_default=True, help="How many entries, earliest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def list_entries(stream: str, limit: int, as_json: bool) -> None:
    """The first entries waiting for STREAM, earliest release first, decoded through the
    schema registry."""
    if limit < 1:
        fail(f"--limit {limit}", "give --limit a number of entries, 1 or more")
    settings = settings_or_fail()

    async def collect(store: DelayedStore) -> list[dict[str, Any]]:
        cache = SchemaCache(SchemaRegistry(store.redis, settings.key_prefix))
        found = []
        for entry in await store.peek(stream, limit):
            line = await entry_json(
                "", entry.fields, cache, prefix=settings.key_prefix,
                max_entry_bytes=settings.max_entry_bytes,
            )  # fmt: skip
            found.append(_entry_json(entry, line))
        return found

    found = _with_store(collect)
    if as_json:
        print_json(found)
        return
    table = Table("release (UTC)", "schema_id", "message", "other fields")
    for entry in found:
        message = entry.get("message", entry.get("error"))
        others = ", ".join(f"{name}={value}" for name, value in entry.get("fields", {}).items())
        table.add_row(
            utc_text(entry["release_ms"]),
            escape(entry.get("schema_id", "-")),
            escape(json.dumps(message, ensure_ascii=False)),
            escape(others),
        )
    out.print(table)
    if not found:
        out.print(f"nothing waits for {escape(stream)}")


@delayed.command("move-now")
@click.argument("stream")
@click.option("--limit", type=int, default=None, help="Move at most this many (default: all).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def move_now(stream: str, limit: int | None, yes: bool) -> None:
    """Release STREAM's waiting entries into it now, due or not, earliest first."""
    if limit is not None and limit < 1:
        fail(f"--limit {limit}", "give --limit a number of entries, 1 or more, or leave it out")
    what = "all waiting entries" if limit is None else f"up to {limit} waiting entries"
    if not yes and not click.confirm(f"Move {what} of {stream} into it now?"):
        raise SystemExit(1)
    moved = _with_store(lambda store: store.move_now(stream, limit))
    out.print(f"moved {moved} entries into {escape(stream)}")
