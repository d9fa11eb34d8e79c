"""`runtime serve`: one process serving an app until SIGTERM or SIGINT, then its exit code.

    runtime serve services.orders:app [--workers N] [--only NAME ...]

What belongs to the process rather than to the runtime lives here: log lines, the embedded
server's URL, uvloop, signal handling, tracing's provider, and the exit code (0 after a clean
drain, 3 after a refused commit). `--workers N` starts N such processes against the same server
(gristmill.supervisor).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import anyio

from gristmill.connect import server_url
from gristmill.errors import ScriptError
from gristmill.runtime import Runtime
from gristmill.schemas.backend import require_upb
from gristmill.startup import reach_server
from gristmill.stopping import STOP_ASKED
from gristmill.supervisor import serve_workers
from gristmill.telemetry import tracing
from gristmill.telemetry.logs import JsonFormatter

if TYPE_CHECKING:
    from gristmill.app import App
    from gristmill.settings import Settings

log = logging.getLogger("gristmill.runtime")  # the logger operators already filter on


def _add_processor(record: logging.LogRecord) -> bool:
    processor = getattr(record, "processor", None)
    record.where = f" [{processor}]" if processor else ""
    return True


def configure_logging(level: str, log_format: str = "text") -> None:
    """One line per record on stderr, naming the processor when the record has one."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_add_processor)
    if log_format == "json":  # telemetry hook: structured lines with trace ids
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s%(where)s: %(message)s")
        )
    logging.basicConfig(level=level, handlers=[handler])


def serve_app(
    app: App, target: str, settings: Settings, *, workers: int = 1, only: tuple[str, ...] = ()
) -> int:
    """Serve `app` until SIGTERM/SIGINT; returns the exit code (0 after a clean drain)."""
    configure_logging(settings.log_level, settings.log_format)
    with server_url(settings, keep=True) as url:
        if workers > 1:
            return serve_workers(target, url, workers, only)
        return _serve_here(app, settings, url, only)


def _serve_here(app: App, settings: Settings, url: str, only: tuple[str, ...]) -> int:
    import uvloop

    provider = tracing.configure(os.environ, app.name)  # telemetry hook: OTEL_* variables

    async def main() -> None:
        runtime = Runtime(app, settings, url, only=only)
        try:  # h2: before "serving": what stops the start is one error line, not a traceback
            await reach_server(runtime.redis, url, settings.start_timeout)
            require_upb()
            await runtime._adopt_schemas()
        except BaseException:
            await runtime.redis.aclose()
            raise
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as group:

                async def watch_signals() -> None:
                    async for signum in signals:
                        log.info("%s: draining", signal.Signals(signum).name)
                        runtime.stop()

                group.start_soon(watch_signals)
                if STOP_ASKED.is_set():  # SIGTERM came while starting: drain straight away
                    log.info("stop asked during start-up: draining")
                    runtime.stop()
                log.info(
                    "serving %d processors of %s as consumer %s",
                    len(runtime.loops), app.name, runtime.consumer,
                )  # fmt: skip
                await runtime.run()
                group.cancel_scope.cancel()

    refused: list[BaseException] = []
    try:
        anyio.run(main, backend_options={"loop_factory": uvloop.new_event_loop})
    except* ScriptError as group:
        refused += _leaves(group)
    finally:
        if provider is not None:
            provider.shutdown()  # telemetry hook: flush the last spans
    for error in refused:
        # a refused commit: retrying could write outputs twice, so the process stops here
        log.critical("stopping: %s", error)
    if refused:
        return 3
    log.info("stopped cleanly")
    return 0


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions in an exception group, however deeply task groups nested them."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]
