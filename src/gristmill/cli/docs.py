"""`runtime docs APP [APP...]`: an AsyncAPI 3.0 document and a drawing of the pipeline graph.

Streams, processors and outputs come from the apps' declarations. The message types on each
stream come from handlers' annotations and, with `--sample` (the default when a server is
configured), from the newest entry of each stream, looked up in the schema registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
import graphviz

from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out
from gristmill.cli.serve import load_app, settings_or_fail
from gristmill.envelope import open_fields
from gristmill.errors import ConfigError, DecodeError, SchemaError
from gristmill.observe.asyncapi import document
from gristmill.observe.graph import draw
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor
    from redis.asyncio import Redis

    from gristmill.app import App


def _streams(apps: list[App]) -> list[str]:
    specs = [spec for app in apps for spec in app.processors.values()]
    return sorted({s for spec in specs for s in (*spec.inputs, *spec.outputs, *spec.side_outputs)})


async def _observed(redis: Redis, streams: list[str], prefix: str) -> dict[str, list[Descriptor]]:
    """The type of the newest entry of each stream, from the registry."""
    cache = SchemaCache(SchemaRegistry(redis, prefix))
    seen: dict[str, list[Descriptor]] = {}
    for stream in streams:
        newest: Any = await redis.xrevrange(stream, count=1)
        if not newest:
            continue
        fields = [item for pair in newest[0][1].items() for item in pair]
        try:
            schema_id = open_fields(fields, 1 << 30).schema_id
            seen[stream] = [cast("Descriptor", (await cache.resolve(schema_id)).DESCRIPTOR)]
        except (DecodeError, SchemaError):
            continue  # not a gristmill entry, or a schema gone from the registry
    return seen


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="APP [APP]...")
@click.option(
    "--out", "out_dir", default="docs/generated", show_default=True,
    type=click.Path(file_okay=False, path_type=Path), help="Directory to write into.",
)  # fmt: skip
@click.option(
    "--sample/--no-sample", default=None,
    help="Read each stream's newest entry for its type (default: if GRISTMILL_REDIS_URL is set).",
)  # fmt: skip
@click.option("--format", "formats", default="svg,png", show_default=True, help="Picture formats.")
def docs(targets: tuple[str, ...], out_dir: Path, sample: bool | None, formats: str) -> None:
    """Write asyncapi.json and pipeline.svg/.png for the apps APP (package.module:app)."""
    settings = settings_or_fail()
    try:
        apps = [load_app(target) for target in targets]
    except ConfigError as exc:
        fail(str(exc), "give apps as package.module:app")
    observed: dict[str, list[Descriptor]] = {}
    if sample if sample is not None else not settings.embedded:
        streams = _streams(apps)
        prefix = settings.key_prefix
        observed = with_redis(settings, lambda redis: _observed(redis, streams, prefix))
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = document(apps, observed, title=" + ".join(app.name for app in apps))
    (out_dir / "asyncapi.json").write_text(json.dumps(spec, indent=2) + "\n")
    try:
        pictures = draw(apps, out_dir, [f.strip() for f in formats.split(",") if f.strip()])
    except graphviz.ExecutableNotFound:
        fail(
            "Graphviz's `dot` is not installed",
            "apt-get install graphviz (or brew install graphviz)",
        )
    except ValueError as exc:
        fail(str(exc), "give --format as a comma-separated list like svg,png")
    for path in [out_dir / "asyncapi.json", *pictures]:
        out.print(f"wrote {path}")
