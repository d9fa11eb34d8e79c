"""`runtime`: serve processors and inspect everything they keep in Redis.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import click

from gristmill.cli.acl import acl
from gristmill.cli.delayed import delayed
from gristmill.cli.dlq import dlq
from gristmill.cli.docs import docs
from gristmill.cli.globals import RuntimeGroup, url_option
from gristmill.cli.history import history
from gristmill.cli.manifests import manifests
from gristmill.cli.probe import health
from gristmill.cli.publish import publish
from gristmill.cli.schedules import schedules
from gristmill.cli.schemas import schemas
from gristmill.cli.serve import serve
from gristmill.cli.status import status
from gristmill.cli.sweep import sweep
from gristmill.cli.tail import tail
from gristmill.cli.tasks import tasks
from gristmill.cli.ui import ui
from gristmill.stopping import catch_early_stop


@click.group(cls=RuntimeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@url_option
@click.version_option(package_name="gristmill", prog_name="runtime")
def runtime() -> None:
    """Stream processors on Redis Streams: serve them, inspect their streams and lanes."""


runtime.add_command(serve)
runtime.add_command(schemas)
runtime.add_command(dlq)
runtime.add_command(delayed)
runtime.add_command(status)
runtime.add_command(publish)
runtime.add_command(health)
runtime.add_command(docs)
schemas.add_command(history)
runtime.add_command(acl)
runtime.add_command(sweep)
runtime.add_command(manifests)
runtime.add_command(tail)
runtime.add_command(tasks)
runtime.add_command(schedules)
runtime.add_command(ui)


def main() -> None:
    """Entry point of the `runtime` console script and `python -m gristmill`."""
    catch_early_stop()
    runtime(prog_name="runtime")
