"""Give an app's tasks a connection: their client for enqueueing, their queues' workers a
Redis client for task_start. The runtime does it at start; `app.connected()` does it too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill.tasks.client import TaskClient
from gristmill.tasks.worker import TaskWork

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.app import App
    from gristmill.schemas.cache import SchemaCache
    from gristmill.settings import Settings


def bind_tasks(
    app: App, redis: Redis, cache: SchemaCache, settings: Settings, portal: Any = None
) -> TaskClient:
    """Bind every task and task queue of `app` to `redis`; returns the shared client."""
    bucket_ms = settings.delayed_bucket_ms if settings.delayed_layout == "buckets" else 0
    client = TaskClient(
        redis, cache, prefix=settings.key_prefix, bucket_ms=bucket_ms, portal=portal
    )
    for task in app.tasks.values():
        task.client = client
    for spec in app.processors.values():
        if isinstance(spec.tasks, TaskWork):
            spec.tasks.redis = redis
    return client
