"""`runtime delayed stats | list | move-now`: what waits in the delayed stores, and releasing it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from gristmill import keys
from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out, print_json
from gristmill.cli.serve import settings_or_fail
from gristmill.envelope import PAYLOAD, SCHEMA_ID
from gristmill.timing.delayed import DelayedStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gristmill.timing.delayed import DelayedEntry, StoreStats

T = TypeVar("T")


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _with_store(action: Callable[[DelayedStore], Awaitable[T]]) -> T:
    settings = settings_or_fail()
    return with_redis(
        settings,
        lambda redis: action(
            DelayedStore(
                redis,
                prefix=settings.key_prefix,
                layout=settings.delayed_layout,
                bucket_ms=settings.delayed_bucket_ms,
            )
        ),
        announce=False,
    )


@click.group()
def delayed() -> None:
    """Entries waiting in the delayed stores: count them, list them, release them now."""


@delayed.command()
@click.argument("streams", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def stats(streams: tuple[str, ...], as_json: bool) -> None:
    """Waiting entries per target stream (all registered targets unless STREAMS are given)."""

    async def collect(store: DelayedStore) -> tuple[list[StoreStats], str | None]:
        targets = list(streams) or await store.targets()
        leader = await store.redis.get(keys.lease("sweeper", store.prefix))
        found = [await store.stats(stream) for stream in targets]
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
            _when(s.earliest_release_ms),
            _when(s.latest_release_ms),
        )
    out.print(table)
    out.print(f"sweeper leader: {escape(leader) if leader else 'none (no sweeper running)'}")


def _value(raw: bytes) -> dict[str, Any]:
    # the same shape as `runtime dlq --json`: text as is, anything else base64
    try:
        return {"value": raw.decode(), "base64": False}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(raw).decode(), "base64": True}


def _entry_json(entry: DelayedEntry) -> dict[str, Any]:
    pairs = zip(entry.fields[0::2], entry.fields[1::2], strict=True)
    return {
        "release_ms": entry.release_ms,
        "fields": {name.decode(errors="replace"): _value(value) for name, value in pairs},
    }


@delayed.command("list")
@click.argument("stream")
@click.option("--limit", default=20, show_default=True, help="How many entries, earliest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def list_entries(stream: str, limit: int, as_json: bool) -> None:
    """The first entries waiting for STREAM, earliest release first."""
    if limit < 1:
        fail(f"--limit {limit}", "give --limit a number of entries, 1 or more")
    found = _with_store(lambda store: store.peek(stream, limit))
    if as_json:
        print_json([_entry_json(entry) for entry in found])
        return
    table = Table("release (UTC)", "schema_id", "payload bytes", "other fields")
    for entry in found:
        fields = dict(zip(entry.fields[0::2], entry.fields[1::2], strict=True))
        others = ", ".join(
            f"{name.decode(errors='replace')}={value.decode(errors='replace')}"
            for name, value in fields.items()
            if name not in (SCHEMA_ID, PAYLOAD)
        )
        table.add_row(
            _when(entry.release_ms),
            fields.get(SCHEMA_ID, b"").hex()[:16],
            str(len(fields.get(PAYLOAD, b""))),
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
