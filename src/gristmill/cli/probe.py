"""`runtime health [--live]`: ask a runtime's health port, for exec probes and scripts.

Exit 0 if ready (or alive, with --live), 1 if not or unreachable; one line either way.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import click

from gristmill.cli.output import err, out
from gristmill.cli.serve import settings_or_fail


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), help="Default: GRISTMILL_HEALTH_PORT.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--live", is_flag=True, help="Ask only whether the event loop turns (/livez).")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds to wait for an answer.")
def health(port: int | None, host: str, live: bool, timeout: float) -> None:
    """Exit 0 if the runtime on this host is ready (alive with --live), else 1."""
    port = port or settings_or_fail().health_port
    if not port:
        err.print("the health port is off (GRISTMILL_HEALTH_PORT=0): nothing to ask")
        raise SystemExit(1)
    url = f"http://{host}:{port}/{'livez' if live else 'readyz'}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            out.print(reply.read().decode().strip(), markup=False)
            raise SystemExit(0)
    except urllib.error.HTTPError as exc:
        err.print(exc.read().decode().strip(), markup=False)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        err.print(f"no answer from {url}: {reason}", markup=False)
    raise SystemExit(1)
