"""`runtime tail STREAM`: print a stream's entries as JSON lines, decoded through the registry.

    runtime tail orders                 # the last 10 entries, then new ones as they arrive
    runtime tail orders --last 0        # only new ones
    runtime tail orders --no-follow     # the last 10, then exit
    runtime tail orders --group audit   # as consumer `tail:<host>:<pid>` of group `audit`

Each line is one JSON object: `id`, `schema_id`, `message` (protobuf's JSON mapping of the
payload) or `error` (`reason`, `detail`: why a processor would dead-letter it), and `fields`
(every other field as text: headers, `attempt`, and a dead-letter lane's `dl:` fields).
"""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING, Any

import click
from redis.exceptions import ResponseError

from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out
from gristmill.cli.serve import settings_or_fail
from gristmill.connect import unparsed
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.decoding import entry_json
from gristmill.schemas.registry import SchemaRegistry

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.settings import Settings

BLOCK_MS = 1000
READ_COUNT = 100


def _emit(line: dict[str, Any]) -> None:
    out.file.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
    out.file.flush()


async def _check_group(redis: Redis, stream: str, group: str) -> None:
    """Create `group` at the stream's end if missing; refuse one a processor reads with."""
    try:
        await redis.xgroup_create(stream, group, id="$", mkstream=True)
        return
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    consumers = await redis.xinfo_consumers(stream, group)
    names = [c["name"].decode() if isinstance(c["name"], bytes) else c["name"] for c in consumers]
    others = [name for name in names if not name.startswith("tail:")]
    if others:
        fail(
            f"group {group} of {stream} has consumers ({', '.join(others[:3])}): "
            "tailing with it would take entries from them",
            "pick a group name of your own for `--group`, or tail without it",
        )


def _entries(reply: Any) -> list[Any]:
    """The entries of one stream's XREAD(GROUP) reply: RESP2 [[name, entries]], RESP3 a map."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values())))
    return list(reply[0][1])


async def _tail(
    redis: Redis, settings: Settings, stream: str, group: str | None, last: int, follow: bool
) -> None:
    cache = SchemaCache(SchemaRegistry(redis, settings.key_prefix))
    prefix, max_bytes = settings.key_prefix, settings.max_entry_bytes

    async def show(entries: list[Any]) -> None:
        for entry_id, fields in entries:
            line = await entry_json(
                entry_id.decode(), fields, cache, prefix=prefix, max_entry_bytes=max_bytes
            )
            _emit(line)

    block = ("BLOCK", BLOCK_MS) if follow else ()
    if group is not None:
        await _check_group(redis, stream, group)
        consumer = f"tail:{socket.gethostname()}:{os.getpid()}"
        while True:
            reply = await unparsed(
                redis, stream, b"XREADGROUP", "GROUP", group, consumer, "COUNT", READ_COUNT, *block,
                "STREAMS", stream, ">",
            )  # fmt: skip
            entries = _entries(reply)
            await show(entries)
            if entries:
                await unparsed(
                    redis, stream, b"XACK", stream, group, *[entry_id for entry_id, _ in entries]
                )
            elif not follow:
                return
    newest = await unparsed(redis, stream, b"XREVRANGE", stream, "+", "-", "COUNT", max(last, 1))
    await show(list(reversed(newest))[-last:] if last else [])
    last_id = newest[0][0] if newest else b"0-0"
    while follow:
        reply = await unparsed(
            redis,
            stream,
            b"XREAD",
            "COUNT",
            READ_COUNT,
            "BLOCK",
            BLOCK_MS,
            "STREAMS",
            stream,
            last_id,
        )
        entries = _entries(reply)
        if entries:
            await show(entries)
            last_id = entries[-1][0]


@click.command()
@click.argument("stream")
@click.option("--last", default=10, show_default=True, help="Entries already there to print first.")
@click.option("--group", default=None, help="Read as a consumer of this group (acked as printed).")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep printing new entries (Ctrl-C stops).")  # fmt: skip
def tail(stream: str, last: int, group: str | None, follow: bool) -> None:
    """Print STREAM's entries as JSON lines, decoded through the schema registry."""
    settings = settings_or_fail()
    if last < 0:
        fail(f"--last {last}: must be 0 or more", "pass --last 0 for only new entries")
    try:
        with_redis(settings, lambda redis: _tail(redis, settings, stream, group, last, follow))
    except KeyboardInterrupt:
        return
