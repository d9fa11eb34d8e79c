"""An app inside a program of your own: enqueue tasks, or run the workers too, without `serve`.

    async with app.connected():          # enqueue and read tasks; no workers
        handle = await send_email.enqueue(recipient="ada@example.com")

    async with app.running():            # also run every processor and task queue here
        ...                              # e.g. in a FastAPI / Starlette lifespan

    worker = app.start_in_thread()       # a sync program (Flask, Django): a thread of its own
    handle = send_email.enqueue_sync(recipient="ada@example.com")
    worker.stop()

With no GRISTMILL_REDIS_URL these use the embedded server of GRISTMILL_DATA_DIR, as `serve`.
The health port (/livez, /readyz, /metrics) stays closed here unless GRISTMILL_HEALTH_PORT is
set in the environment: the program that hosts the workers owns its own HTTP surface.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING, Self

import anyio
from anyio.from_thread import start_blocking_portal

from gristmill.connect import redis_client, server_url
from gristmill.runtime import Runtime
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry
from gristmill.settings import load_settings
from gristmill.startup import reach_server
from gristmill.tasks.binding import bind_tasks

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.from_thread import BlockingPortal

    from gristmill.app import App
    from gristmill.settings import Settings
    from gristmill.tasks.client import TaskClient


@contextlib.asynccontextmanager
async def connected(
    app: App, *, url: str | None = None, settings: Settings | None = None
) -> AsyncIterator[TaskClient]:
    """Connect the app's tasks for enqueueing (no workers run); yields their client."""
    settings = settings or load_settings()
    with contextlib.ExitStack() as stack:
        url = url or stack.enter_context(server_url(settings, announce=False))
        redis = redis_client(url, settings)
        try:
            await reach_server(redis, url, settings.start_timeout)
            cache = SchemaCache(SchemaRegistry(redis, settings.key_prefix))
            yield bind_tasks(app, redis, cache, settings)
        finally:
            for task in app.tasks.values():
                task.client = None
            with anyio.move_on_after(2.0, shield=True):
                await redis.aclose()


@contextlib.asynccontextmanager
async def running(
    app: App, *, url: str | None = None, settings: Settings | None = None
) -> AsyncIterator[Runtime]:
    """Run the app's processors and task queues in this event loop while the block runs;
    on exit they drain (finish and commit the batches in hand) within the grace period."""
    if settings is None:
        asked = "GRISTMILL_HEALTH_PORT" in os.environ
        settings = load_settings() if asked else load_settings(health_port=0)
    with contextlib.ExitStack() as stack:
        url = url or stack.enter_context(server_url(settings, announce=False, keep=True))
        runtime = Runtime(app, settings, url)
        await reach_server(runtime.redis, url, settings.start_timeout)
        async with anyio.create_task_group() as group:
            group.start_soon(runtime.run)
            try:
                with anyio.fail_after(settings.start_timeout + 30):
                    await runtime.wait_ready()
                yield runtime
            finally:
                runtime.stop()
        for task in app.tasks.values():
            task.client = None


class ThreadedApp:
    """An app's workers running in a thread of their own; `stop()` drains them."""

    def __init__(self, app: App, url: str | None, settings: Settings | None) -> None:
        self._portal_context = start_blocking_portal()
        self.portal: BlockingPortal = self._portal_context.__enter__()
        self._running = self.portal.wrap_async_context_manager(
            running(app, url=url, settings=settings)
        )
        try:
            self.runtime = self._running.__enter__()
        except BaseException:
            self._portal_context.__exit__(None, None, None)
            raise
        self.runtime.task_client.portal = self.portal
        self._lock = threading.Lock()
        self._stopped = False

    def stop(self) -> None:
        """Drain the workers and end the thread (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            self._running.__exit__(None, None, None)
        finally:
            self._portal_context.__exit__(None, None, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_in_thread(
    app: App, *, url: str | None = None, settings: Settings | None = None
) -> ThreadedApp:
    """Start the app's workers in a background thread; returns once they are reading."""
    return ThreadedApp(app, url, settings)
