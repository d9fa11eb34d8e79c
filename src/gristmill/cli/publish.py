"""`runtime publish STREAM --type NAME --json '{...}'`: one message, typed by the registry.

The message type is a registered subject (by default a message's full name); the JSON is
parsed into the subject's latest version (protobuf's JSON mapping) and written in gristmill's
wire format, so every processor reads it as if a service had published it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from google.protobuf import json_format

from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out
from gristmill.cli.serve import settings_or_fail
from gristmill.envelope import seal
from gristmill.errors import SchemaError
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry
from gristmill.telemetry import tracing

if TYPE_CHECKING:
    from redis.asyncio import Redis


def _document(inline: str | None, file: Path | None) -> str:
    if inline is not None and file is not None:
        fail("both --json and --file given", "give the message one way: --json, --file or stdin")
    if inline is not None:
        return inline
    if file is not None:
        return file.read_text() if str(file) != "-" else sys.stdin.read()
    if sys.stdin.isatty():
        fail("no message given", "pass --json '{...}', --file message.json, or pipe JSON in")
    return sys.stdin.read()


@click.command()
@click.argument("stream")
@click.option("--type", "subject", required=True, help="Subject (message full name) to encode as.")
@click.option("--json", "inline", metavar="JSON", help="The message as JSON.")
@click.option(
    "--file", type=click.Path(dir_okay=False, path_type=Path), help="Read the JSON from a file."
)
@click.option("--key", help="Ordering / partition key carried in the entry.")
def publish(
    stream: str, subject: str, inline: str | None, file: Path | None, key: str | None
) -> None:
    """Publish one message to STREAM, given as JSON (--json, --file, or stdin)."""
    settings = settings_or_fail()
    text = _document(inline, file)

    async def send(redis: Redis) -> tuple[str, str]:
        registry = SchemaRegistry(redis, settings.key_prefix)
        record = await registry.version(subject)
        message_class = await SchemaCache(registry).resolve(record.schema_id.encode())
        try:
            message = json_format.Parse(text, message_class())
        except json_format.ParseError as exc:
            fail(f"the JSON is not a {subject}: {exc}", "fix the JSON (protobuf's JSON mapping)")
        fields = seal(
            record.schema_id.encode(), message.SerializeToString(),
            compress_above=settings.compress_above, key=key.encode() if key else None,
        )  # fmt: skip
        traced = tracing.publish_fields(stream)  # telemetry hook
        if traced is not None:
            fields += traced[1]
            traced[0].end()
        entry_id = await redis.execute_command("XADD", stream, "*", *fields)  # type: ignore[no-untyped-call]
        return entry_id.decode(), record.schema_id

    try:
        entry_id, schema_id = with_redis(settings, send, announce=False)
    except SchemaError as exc:
        fail(str(exc), "register the schema first, or check the name with `runtime schemas list`")
    out.print(f"{entry_id} ({subject}, schema {schema_id})")
