"""`runtime acl APP...`: print the least-privilege ACL SETUSER line of a service (or sweeper).

    runtime acl services.orders:app                 # the orders service's user
    runtime acl --sweeper services.orders:app services.payments:app   # the one sweeper's user

Nothing is sent to a server: pipe the line into `redis-cli` (or put it in an ACL file).
"""

from __future__ import annotations

import click

from gristmill.acl import service_grant, setuser_line, sweeper_grant
from gristmill.cli.output import err, fail, out
from gristmill.cli.serve import load_app, settings_or_fail
from gristmill.errors import ConfigError


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="APP...")
@click.option("--sweeper", is_flag=True, help="The user of `runtime sweep` for these apps.")
@click.option("--user", default=None, help="User name (default: the app's name, or 'sweeper').")
@click.option("--password", default=None, help="Put this password's SHA-256 in the line.")
def acl(targets: tuple[str, ...], sweeper: bool, user: str | None, password: str | None) -> None:
    """Print the ACL SETUSER line for APP (package.module:app): its commands and keys only."""
    settings = settings_or_fail()
    try:
        apps = [load_app(target) for target in targets]
    except ConfigError as exc:
        fail(str(exc), "check the app path (package.module:app)")
    if sweeper:
        grant = sweeper_grant(apps, settings.key_prefix)
        name = user or "sweeper"
    else:
        if len(apps) != 1:
            fail(f"{len(apps)} apps given", "give one app, or --sweeper for the sweeper's user")
        grant = service_grant(apps[0], settings.key_prefix)
        name = user or apps[0].name
    out.print(setuser_line(name, grant, password), soft_wrap=True, markup=False)
    if not sweeper:
        err.print(
            "note: run this service with GRISTMILL_SWEEPER=false and one `runtime sweep` under "
            "the user of `runtime acl --sweeper` (every app)",
            soft_wrap=True, markup=False,
        )  # fmt: skip
    if password is None:
        err.print(
            f"note: no password in the line; add one with ACL SETUSER {name} >secret",
            soft_wrap=True, markup=False,
        )  # fmt: skip
