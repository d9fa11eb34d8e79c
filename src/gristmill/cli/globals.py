"""Options of `runtime` itself that every command honours, wherever they stand on the line."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from collections.abc import Sequence

URL_HELP = (
    "The server to use, for this command only (sets GRISTMILL_REDIS_URL); may follow any "
    "command: `runtime dlq list --url redis://host:6379/0`."
)


def take_url(args: Sequence[str]) -> tuple[list[str], str | None]:
    """`args` without their `--url VALUE` (or `--url=VALUE`), and that value (the last wins).

    Arguments after `--` are left alone.
    """
    rest: list[str] = []
    url: str | None = None
    items = iter(args)
    for arg in items:
        if arg == "--":
            rest += [arg, *items]
            break
        if arg == "--url":
            url = next(items, None)
            if url is None:
                raise click.UsageError("--url needs a value, like redis://127.0.0.1:6379/0")
        elif arg.startswith("--url="):
            url = arg.removeprefix("--url=")
        else:
            rest.append(arg)
    return rest, url


class RuntimeGroup(click.Group):
    """The `runtime` group: `--url` is taken from anywhere on the line, before any command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest, url = take_url(args)
        if url is not None:
            os.environ["GRISTMILL_REDIS_URL"] = url  # every command reads its settings after
        return super().parse_args(ctx, rest)


url_option = click.option("--url", metavar="URL", expose_value=False, help=URL_HELP)
