"""`runtime serve module:app`: host every processor of an app in this process (or N)."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import click

from gristmill.app import App
from gristmill.cli.output import fail
from gristmill.connect import tls_problem as check_tls
from gristmill.errors import ConfigError, GristmillError
from gristmill.settings import Settings, load_settings
from gristmill.startup import fix_for


def load_app(target: str) -> App:
    """Import `package.module:attribute` and return the App it names.

    Raises:
        ConfigError: If the target is malformed, does not import, or is not an App.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{target!r} is not of the form package.module:app")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: services/ next to the cwd
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from None
    apps = sorted(name for name, value in vars(module).items() if isinstance(value, App))
    found = ", ".join(f"{module_name}:{name}" for name in apps) or "none"
    if not hasattr(module, attribute):
        raise ConfigError(f"{module_name} has no attribute {attribute!r}; Apps in it: {found}")
    app = getattr(module, attribute)
    if not isinstance(app, App):
        raise ConfigError(
            f"{target!r} is a {type(app).__name__}, not a gristmill App; Apps in it: {found}"
        )
    return app


def settings_or_fail() -> Settings:
    """The settings, or a one-line error naming the variable and exit code 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), "set the variable to a valid value (see README: settings) or unset it")


@click.command()
@click.argument("target")
@click.option("--workers", default=1, show_default=True, help="Processes to run the app in.")
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only these processors, bridges or tasks (a task runs its whole queue).",
)
def serve(target: str, workers: int, only: tuple[str, ...]) -> None:
    """Run every processor of TARGET (package.module:app) until SIGTERM or Ctrl-C."""
    settings = settings_or_fail()
    if workers < 1:
        fail(f"--workers {workers}", "give --workers a number of processes, 1 or more")
    try:
        app = load_app(target)
        unknown = sorted(
            set(only) - set(app.processors) - set(app.tickers) - set(app.bridges) - set(app.tasks)
        )
        if unknown:
            raise ConfigError(
                f"--only {', '.join(unknown)}: no such processor in {target}; "
                f"it has {', '.join(sorted(app.processors)) or 'none'}"
            )
    except ConfigError as exc:
        fail(str(exc), "check the app path and processor names")
    except GristmillError as exc:  # a schema the module loads at import (load_proto)
        start_failed(exc, settings)
    from gristmill.serving import serve_app  # deferred: `runtime --help` stays fast

    tls_problem = check_tls(settings)  # h8: a wrong CA or missing client cert, in one line
    if tls_problem is not None:
        fail(*tls_problem)

    try:
        code = serve_app(app, target, settings, workers=workers, only=only)
    except GristmillError as exc:
        start_failed(exc, settings)
    raise SystemExit(code)


def start_failed(error: GristmillError, settings: Settings) -> NoReturn:
    """End a failed start with `error:` and `fix:` lines; the traceback only at DEBUG."""
    if settings.log_level == "DEBUG":
        traceback.print_exception(error)
    fail(str(error), fix_for(error))
