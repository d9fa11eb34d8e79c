"""What a running task may receive: its id and attempt, and `report` for progress messages.

    @app.task(queue="reports")
    async def build_report(month: str, ctx: TaskContext) -> str:
        await ctx.report("collected 1,200 rows")
        ...

A parameter hinted `TaskContext` is filled in by the worker (not sent by the caller).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gristmill import scripts
from gristmill.clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    from redis.asyncio import Redis

REPORT = scripts.load("task_report")


class TaskContext:
    """One run of a task: its `task_id`, `name`, `queue` and `attempt` (1 on the first run)."""

    __slots__ = ("_record", "_redis", "attempt", "name", "queue", "task_id")

    def __init__(
        self,
        task_id: str,
        name: str,
        queue: str,
        attempt: int,
        redis: Redis | None = None,
        record_key: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.name = name
        self.queue = queue
        self.attempt = attempt
        self._redis = redis
        self._record = record_key  # None: an untracked task, whose reports go nowhere

    async def report(self, text: str) -> None:
        """Add `text` (one line) to the task's messages now, with its time.

        `runtime tasks show ID` lists them, and `handle.record()` returns them, while the task
        still runs. One round trip; an untracked task has no record and keeps nothing.
        """
        if self._redis is None or self._record is None:
            return
        line = " ".join(text.split())
        await REPORT(self._redis, [self._record], [SYSTEM_CLOCK.now_ms(), line])
