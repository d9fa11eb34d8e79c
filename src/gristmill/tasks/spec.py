"""A declared task as data: what the worker runs and where its entries go (no I/O)."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from google.protobuf.message import Message

    from gristmill.failures.policy import RetryPolicy
    from gristmill.tasks.signature import Signature

MAX_ID_CHARS = 200


@dataclass(frozen=True)
class TaskSpec:
    """One task as declared (see App.task for each field)."""

    name: str
    queue: str
    streams: tuple[str, ...]  # the queue's streams: one, or one per FIFO partition
    function: Callable[..., Awaitable[Any]]
    signature: Signature
    retry: RetryPolicy
    ttl_ms: int  # 0: never expires
    result_ttl_ms: int
    timeout: float | None
    tracked: bool
    target: str | None
    description: str
    fifo: bool = False
    fifo_key: str | None = None  # the parameter whose value picks the partition

    @property
    def stream(self) -> str:
        """The queue stream (the first partition's, for a keyed FIFO queue)."""
        return self.streams[0]

    def stream_for(self, message: Message) -> str:
        """The stream a task with these arguments goes to: its key's partition, if keyed."""
        if self.fifo_key is None or len(self.streams) == 1:
            return self.streams[0]
        value = str(getattr(message, self.fifo_key)).encode()
        return self.streams[zlib.crc32(value) % len(self.streams)]


@dataclass(frozen=True, slots=True)
class Call:
    """One task to enqueue: its arguments, and optionally its id and when it is due."""

    kwargs: Mapping[str, object]
    task_id: str | None = None
    due_ms: int | None = None


def check_id(task_id: str) -> str:
    """A caller-given task id, checked: it names a Redis key and travels in an entry.

    Raises:
        ValueError: If it is empty, too long, or holds whitespace or `/`.
    """
    if not task_id or len(task_id) > MAX_ID_CHARS or any(c.isspace() for c in task_id):
        raise ValueError(f"task id {task_id!r}: give 1-{MAX_ID_CHARS} characters, no spaces")
    if "/" in task_id:
        raise ValueError(f"task id {task_id!r}: '/' separates the task name from the id")
    return task_id


def due_ms_of(when: float | timedelta | datetime) -> int:
    """Epoch ms of `when`: seconds from now, a timedelta from now, or an aware datetime.

    Raises:
        ValueError: If it is a naive datetime (its zone would be a guess).
    """
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("defer(at): give an aware datetime (e.g. datetime.now(UTC))")
        return round(when.timestamp() * 1000)
    seconds = when.total_seconds() if isinstance(when, timedelta) else float(when)
    return round((time.time() + max(seconds, 0.0)) * 1000)
