"""`runtime dlq list | show | replay | purge`: the dead-letter lanes, for people and scripts."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.table import Table
from rich.text import Text

from gristmill.cli.connection import with_redis
from gristmill.cli.output import err, fail, out, print_json, utc_text
from gristmill.cli.serve import settings_or_fail
from gristmill.failures import lanes, operations

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.failures.deadletter import DeadLetterRecord

T = TypeVar("T")

_SHOW_MESSAGE_CHARS = 60


def _selection(
    reasons: tuple[str, ...], start: str, end: str, limit: int | None = None
) -> lanes.Selection:
    problem = operations.selection_problem(start, end, limit)
    if problem is not None:
        fail(*problem)
    return operations.selection(reasons, start, end, limit)


def _value(raw: bytes) -> dict[str, Any]:
    try:
        return {"value": raw.decode(), "base64": False}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(raw).decode(), "base64": True}


def _summary(entry_id: str, record: DeadLetterRecord) -> dict[str, Any]:
    return {
        "id": entry_id,
        "reason": record.reason,
        "exception": record.exception,
        "message": record.message,
        "attempts": record.attempts,
        "origin_stream": record.origin_stream,
        "origin_id": record.origin_id,
        "first_failure": utc_text(record.first_failure_ms, empty=""),
        "last_failure": utc_text(record.last_failure_ms, empty=""),
    }


def _detail(entry_id: str, record: DeadLetterRecord) -> dict[str, Any]:
    fields = record.fields
    return {
        **_summary(entry_id, record),
        "traceback": record.traceback,
        "extra": record.extra,
        "fields": [
            {"name": name.decode(errors="replace"), **_value(value)}
            for name, value in zip(fields[::2], fields[1::2], strict=True)
        ],
    }


def _printable(raw: bytes, limit: int = 80) -> str:
    try:
        text = raw.decode()
        if text.isprintable():
            return text if len(text) <= limit else text[:limit] + "…"
    except UnicodeDecodeError:
        pass
    shown = raw[: limit // 2].hex()
    return f"0x{shown}{'…' if len(raw) > limit // 2 else ''} ({len(raw)} bytes)"


def _short(text: str, limit: int = _SHOW_MESSAGE_CHARS) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


_json_option = click.option("--json", "as_json", is_flag=True, help="One JSON document.")
_reason_option = click.option(
    "--reason", "reasons", multiple=True, metavar="REASON",
    help="Only entries with this reason (repeat for any of several).",
)  # fmt: skip
_start_option = click.option("--start", default="-", show_default=True, help="First entry id.")
_end_option = click.option("--end", default="+", show_default=True, help="Last entry id.")


def _no_lane(problem: str) -> NoReturn:
    fail(problem, "see the lanes that exist with `runtime dlq list`")


@click.group()
def dlq() -> None:
    """Dead-letter lanes: list them, show their entries, replay them, purge them."""


@dlq.command("list")
@click.option("--stream", default=None, help="Only lanes of this input stream.")
@click.option("--group", default=None, help="Only lanes of this group (processor).")
@click.option(
    "--scan-limit", default=10_000, show_default=True,
    help="Count reasons over at most this many entries per lane.",
)  # fmt: skip
@_json_option
def list_lanes(stream: str | None, group: str | None, scan_limit: int, as_json: bool) -> None:
    """Every dead-letter lane, with its size and its entries per reason."""
    settings = settings_or_fail()

    async def work(redis: Redis) -> list[dict[str, Any]]:
        found = await lanes.find_lanes(redis, stream=stream, group=group)
        rows = []
        for lane in found:
            counts, partial = await lanes.reason_counts(
                redis, lane.stream, lane.group, limit=scan_limit
            )
            rows.append({
                "key": lane.key, "stream": lane.stream, "group": lane.group,
                "entries": lane.entries, "first_id": lane.first_id, "last_id": lane.last_id,
                "reasons": counts, "reasons_partial": partial,
            })  # fmt: skip
        return rows

    rows = with_redis(settings, work)
    if as_json:
        print_json(rows)
        return
    if not rows:
        err.print("no dead-letter lanes")
        return
    table = Table()
    for heading in ("stream", "group", "entries", "oldest", "newest"):
        table.add_column(heading, no_wrap=True)
    table.add_column("reasons")
    for row in rows:
        reasons = ", ".join(f"{name or '?'} {count}" for name, count in row["reasons"].items())
        table.add_row(
            Text(row["stream"]), Text(row["group"]), str(row["entries"]),
            row["first_id"] or "", row["last_id"] or "",
            Text(reasons + (" (first entries only)" if row["reasons_partial"] else "")),
        )  # fmt: skip
    out.print(table)


@dlq.command("show")
@click.argument("stream")
@click.argument("group")
@click.argument("entry_id", required=False)
@_reason_option
@_start_option
@_end_option
@click.option("--count", default=20, show_default=True, help="Entries to show at most.")
@_json_option
def show(
    stream: str, group: str, entry_id: str | None, reasons: tuple[str, ...], start: str,
    end: str, count: int, as_json: bool,
) -> None:  # fmt: skip
    """Entries of the dead lane of GROUP reading STREAM; with ENTRY_ID, that one in full."""
    settings = settings_or_fail()
    if entry_id is not None:
        selection = _selection((), entry_id, entry_id, 1)
    else:
        selection = _selection(reasons, start, end, count)

    async def work(
        redis: Redis,
    ) -> tuple[list[lanes.DeadEntry], list[dict[str, Any]]] | str:
        missing = await operations.missing_lane(redis, stream, group)
        if missing is not None:
            return missing
        # h7: the payload as JSON, beside the dl: fields
        return await operations.entries_with_payloads(redis, settings, stream, group, selection)

    result = with_redis(settings, work)
    if isinstance(result, str):
        _no_lane(result)
    entries, decoded = result
    if entry_id is not None:
        if not entries:
            fail(
                f"no entry {entry_id} in the dead lane of {group} reading {stream}",
                "list the lane's ids with `runtime dlq show STREAM GROUP`",
            )
        _show_one(entries[0], as_json, decoded[0])
        return
    if as_json:
        print_json(
            [{**_summary(e.entry_id, e.record), **d} for e, d in zip(entries, decoded, strict=True)]
        )
        return
    if not entries:
        err.print("no matching entries")
        return
    table = Table()
    table.add_column("id", no_wrap=True)  # ids are what people copy into the next command
    table.add_column("reason", no_wrap=True)
    for heading in ("exception", "message", "attempts", "last failure (UTC)"):
        table.add_column(heading)
    for entry in entries:
        record = entry.record
        table.add_row(
            entry.entry_id, Text(record.reason), Text(record.exception),
            Text(_short(record.message)), str(record.attempts), utc_text(record.last_failure_ms, empty=""),
        )  # fmt: skip
    out.print(table)


def _show_one(entry: lanes.DeadEntry, as_json: bool, decoded: dict[str, Any]) -> None:
    record = entry.record
    if as_json:
        print_json({**_detail(entry.entry_id, record), **decoded})
        return
    table = Table("", "", show_header=False, box=None)
    for name, value in _summary(entry.entry_id, record).items():
        table.add_row(name, Text(str(value)))
    for name, value in record.extra.items():
        table.add_row(f"dl:{name}", Text(value))
    fields = record.fields
    for field_name, raw in zip(fields[::2], fields[1::2], strict=True):
        table.add_row(Text(f"field {_printable(field_name, 40)}"), Text(_printable(raw)))
    for name, value in decoded.items():  # the payload through the registry, as JSON
        table.add_row(name, Text(json.dumps(value, ensure_ascii=False, indent=2)))
    out.print(table)
    if record.traceback:
        out.print(Text(record.traceback))


@dlq.command("replay")
@click.argument("stream")
@click.argument("group")
@_reason_option
@_start_option
@_end_option
@click.option("--limit", type=int, default=None, help="Replay at most this many entries.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; move nothing.")
@_json_option
def replay(
    stream: str, group: str, reasons: tuple[str, ...], start: str, end: str, limit: int | None,
    dry_run: bool, as_json: bool,
) -> None:  # fmt: skip
    """Move dead entries of GROUP reading STREAM back to GROUP's retry lane (fresh attempts).

    Only GROUP sees them again: replay never writes to STREAM, which other groups read.
    """
    settings = settings_or_fail()
    selection = _selection(reasons, start, end, limit)
    dead, retry = lanes.lane_keys(stream, group)

    async def work(redis: Redis) -> dict[str, Any]:
        if dry_run:
            would_move = await operations.count_replayable(redis, stream, group, selection)
            return {"dead_lane": dead, "retry_lane": retry, "would_move": would_move}
        return dataclasses.asdict(await operations.replay(redis, stream, group, selection))

    summary = with_redis(settings, work)
    if as_json:
        print_json(summary)
    elif dry_run:
        out.print(Text(f"would move {summary['would_move']} entries from {dead} to {retry}"))
    else:
        out.print(Text(f"moved {summary['moved']} entries from {dead} to {retry}"))
        if summary["skipped"] or summary["refused"]:
            err.print(
                Text(
                    f"{summary['skipped']} were gone before they could move (replayed or "
                    f"purged meanwhile); {summary['refused']} cannot be replayed (see the log)"
                )
            )


@dlq.command("purge")
@click.argument("stream")
@click.argument("group")
@_reason_option
@_start_option
@_end_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_json_option
def purge(
    stream: str, group: str, reasons: tuple[str, ...], start: str, end: str, yes: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Delete dead entries of GROUP reading STREAM for good (asks first, unless --yes)."""
    settings = settings_or_fail()
    selection = _selection(reasons, start, end)
    dead, _ = lanes.lane_keys(stream, group)

    async def select(redis: Redis) -> list[str] | str:
        missing = await operations.missing_lane(redis, stream, group)
        if missing is not None:
            return missing
        return await operations.select_ids(redis, stream, group, selection)

    ids = with_redis(settings, select)
    if isinstance(ids, str):
        _no_lane(ids)
    deleted = 0
    if ids:
        if not yes:
            click.confirm(f"Delete {len(ids)} entries from {dead} for good?", abort=True, err=True)

        async def delete(redis: Redis) -> int:
            return await operations.purge_ids(redis, stream, group, ids)

        deleted = with_redis(settings, delete)
    if as_json:
        print_json({"dead_lane": dead, "selected": len(ids), "deleted": deleted})
    else:
        out.print(Text(f"deleted {deleted} entries from {dead}"))
