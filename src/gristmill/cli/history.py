"""`runtime schemas history SUBJECT`: every version of a subject, its id and when it came."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out, print_json
from gristmill.cli.serve import settings_or_fail
from gristmill.errors import SchemaError, SchemaNotFound
from gristmill.schemas.registry import SchemaRegistry

if TYPE_CHECKING:
    from redis.asyncio import Redis


@click.command()
@click.argument("subject")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def history(subject: str, as_json: bool) -> None:
    """Versions of SUBJECT, oldest first: id, message, when registered; and its mode."""
    settings = settings_or_fail()

    async def gather(redis: Redis) -> dict[str, Any]:
        registry = SchemaRegistry(redis, settings.key_prefix)
        ids = await registry.versions(subject)
        if not ids:
            raise SchemaNotFound(f"no subject {subject!r}")
        versions = []
        for number, schema_id in enumerate(ids, start=1):
            record = await registry.fetch(schema_id)
            when = record.created_at_ms if record else None
            versions.append({
                "version": number, "schema_id": schema_id, "registered_at_ms": when,
                "message": record.message_name if record else None,
            })  # fmt: skip
        mode = (await registry.compatibility(subject)).value
        return {"subject": subject, "mode": mode, "versions": versions}

    try:
        found = with_redis(settings, gather, announce=False)
    except SchemaError as exc:
        fail(str(exc), "check the subject's name with `runtime schemas list`")
    if as_json:
        print_json(found)
        return
    table = Table(title=f"{escape(subject)} (compatibility {found['mode']})", title_justify="left")
    for name in ("version", "schema id", "message", "registered (UTC)"):
        table.add_column(name)
    for row in found["versions"]:
        ms = row["registered_at_ms"]
        when = (
            "-"
            if ms is None
            else f"{datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC):%Y-%m-%d %H:%M:%S}"
        )
        table.add_row(str(row["version"]), row["schema_id"], escape(row["message"] or "-"), when)
    out.print(table)
