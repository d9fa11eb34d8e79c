"""`runtime ui [APP...]`: the web dashboard, served by uvicorn until Ctrl-C or SIGTERM.

Read-only unless started with `--allow-actions`; bound to anything but loopback, actions
also need `--token` (gristmill.ui.access). The page never shows the server's password: it
names the server by scheme, host, port and db only.
"""

from __future__ import annotations

import socket

import click

from gristmill.cli.output import err, fail
from gristmill.cli.serve import load_app, settings_or_fail
from gristmill.connect import server_url
from gristmill.errors import ConfigError, ServerError
from gristmill.ui.access import ActionRules, start_problem
from gristmill.ui.model import Topology, public_address, topology_of

DEFAULT_PORT = 8090


def _topology(apps: tuple[str, ...]) -> Topology | None:
    if not apps:
        return None
    try:
        return topology_of([load_app(target) for target in apps])
    except ConfigError as exc:
        fail(str(exc), "give apps as package.module:app, or none to show every stream")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        fail(
            f"cannot listen on {host} port {port}: {exc.strerror}",
            "pick a free --port (0: any free one) or another --host",
        )
    sock.listen(128)
    return sock


@click.command()
@click.argument("apps", nargs=-1, metavar="[APP]...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free one, printed at start).",
)
@click.option("--allow-actions", is_flag=True, help="Enable the replay and purge buttons.")
@click.option(
    "--token",
    default=None,
    metavar="T",
    help="Secret the page must send with actions; required with --allow-actions off loopback.",
)
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.2),
    help="Seconds between snapshots (the page refreshes as often).",
)
def ui(
    apps: tuple[str, ...],
    host: str,
    port: int,
    allow_actions: bool,
    token: str | None,
    interval: float,
) -> None:
    """A web dashboard of the streams (of APPs, or every one), lanes, delayed entries, leases,
    schedules, tasks and schemas; with --allow-actions, replay and purge dead letters."""
    rules = ActionRules(host, allow_actions, token)
    problem = start_problem(rules)
    if problem is not None:
        fail(*problem)
    settings = settings_or_fail()
    topology = _topology(apps)
    import uvicorn  # deferred: `runtime --help` stays fast

    from gristmill.ui.app import create_app

    sock = _bind(host, port)
    try:
        with server_url(settings, announce=True, keep=False) as url:
            app = create_app(
                url,
                settings,
                rules,
                address=public_address(url),
                streams=topology.streams if topology else None,
                topology=topology,
                interval=interval,
            )
            bound_host, bound_port = sock.getsockname()[:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            err.print(
                f"gristmill: dashboard on http://{shown}:{bound_port}/ reading "
                f"{public_address(url)} ({'actions on' if allow_actions else 'read-only'})",
                soft_wrap=True,
                highlight=False,
                markup=False,
            )
            config = uvicorn.Config(app, log_level="warning", lifespan="on")
            uvicorn.Server(config).run(sockets=[sock])
    except ServerError as exc:
        fail(str(exc), "set GRISTMILL_REDIS_URL to a reachable server, or check the data dir")
    finally:
        sock.close()
