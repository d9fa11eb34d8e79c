"""`runtime sweep [APP...]`: run only the delayed-entry sweeper, until SIGTERM or Ctrl-C.

For deployments whose services run under their own ACL users with GRISTMILL_SWEEPER=false:
the sweeper writes every service's lanes, so it runs once, under the user that
`runtime acl --sweeper` prints. Several may run; the lease keeps one of them sweeping. The
apps given only contribute their `eager` horizons.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

import anyio
import click

from gristmill.cli.output import fail
from gristmill.cli.serve import load_app, settings_or_fail
from gristmill.connect import redis_client, server_url, tls_problem
from gristmill.errors import ConfigError
from gristmill.stopping import STOP_ASKED

if TYPE_CHECKING:
    from gristmill.settings import Settings

log = logging.getLogger(__name__)


async def run_sweeper(url: str, settings: Settings, eager: dict[str, float]) -> None:
    """Sweep (while leader) until SIGTERM or SIGINT, then give the lease up."""
    from gristmill.timing.sweeper import Sweeper

    client = redis_client(url, settings)
    try:
        sweeper = Sweeper.from_settings(client, settings, eager=eager)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as group:
                group.start_soon(sweeper.run, name="sweeper")
                log.info("sweeper running")
                if not STOP_ASKED.is_set():
                    async for signum in signals:
                        log.info("%s: stopping", signal.Signals(signum).name)
                        break
                group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await client.aclose()


@click.command()
@click.argument("targets", nargs=-1, metavar="[APP...]")
def sweep(targets: tuple[str, ...]) -> None:
    """Run only the sweeper that moves due delayed entries into their streams."""
    from gristmill.serving import configure_logging  # deferred: `runtime --help` stays fast

    settings = settings_or_fail()
    try:
        eager = {k: v for target in targets for k, v in load_app(target).eager.items()}
    except ConfigError as exc:
        fail(str(exc), "check the app path (package.module:app)")
    problem = tls_problem(settings)
    if problem is not None:
        fail(*problem)
    configure_logging(settings.log_level)
    with server_url(settings) as url:
        anyio.run(run_sweeper, url, settings, eager)
    log.info("stopped cleanly")
