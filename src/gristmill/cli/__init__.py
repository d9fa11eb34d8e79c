"""`runtime`: serve processors and inspect everything they keep in Redis.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import click

from gristmill.cli.delayed import delayed
from gristmill.cli.dlq import dlq
from gristmill.cli.schemas import schemas
from gristmill.cli.serve import serve
from gristmill.cli.tail import tail
from gristmill.stopping import catch_early_stop


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def runtime() -> None:
    """Stream processors on Redis Streams: serve them, inspect their streams and lanes."""


runtime.add_command(serve)
runtime.add_command(schemas)
runtime.add_command(dlq)
runtime.add_command(delayed)
runtime.add_command(tail)


def main() -> None:
    """Entry point of the `runtime` console script and `python -m gristmill`."""
    catch_early_stop()
    runtime(prog_name="runtime")
