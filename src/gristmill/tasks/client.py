"""The caller's side of tasks: enqueue (task_enqueue.lua), and read, await, cancel, retry.

Every enqueue goes through one script call per 1,000 tasks: the entries (or, deferred, their
delayed-store members) and the records are written together, and an id whose record exists
adds nothing. A handle's `result` polls the record (from 5 ms up to 200 ms between reads).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio

from gristmill import keys, scripts
from gristmill.clock import SYSTEM_CLOCK
from gristmill.envelope import PAYLOAD, SCHEMA_ID, TASK
from gristmill.errors import TaskFailed
from gristmill.tasks import record as records
from gristmill.telemetry import tracing
from gristmill.timing.packing import pack_entry

if TYPE_CHECKING:
    from collections.abc import Awaitable, Coroutine

    from google.protobuf.message import Message
    from redis.asyncio import Redis

    from gristmill.schemas.cache import SchemaCache
    from gristmill.tasks.record import Event, TaskRecord
    from gristmill.tasks.spec import TaskSpec

ENQUEUE = scripts.load("task_enqueue")
CANCEL = scripts.load("task_cancel")
RETRY = scripts.load("task_retry")
CHUNK = 1000

T = TypeVar("T")
Pending = tuple[str, "Message", int | None]  # (task id, arguments, due ms or None)


def task_fields(
    schema_id: bytes, payload: bytes, name: str, task_id: str, carried: list[bytes]
) -> list[bytes]:
    """A task queue entry's fields (docs/wire-format.md), with any trace fields `carried`."""
    return [SCHEMA_ID, schema_id, PAYLOAD, payload, TASK, f"{name}/{task_id}".encode(), *carried]


def task_args(
    record_index: int, fields: list[bytes], due_ms: int | None, record_items: list[bytes]
) -> list[bytes | str | int]:
    """One task's part of task_enqueue.lua's ARGV (its header gives the layout); a record
    index of 0 and no items: untracked."""
    args: list[bytes | str | int] = [record_index]
    if due_ms is None:
        args += (b"q", len(fields), *fields)
    else:
        args += (b"d", due_ms, pack_entry(fields))
    args.append(len(record_items))
    args += record_items
    return args


class TaskClient:
    """Enqueues and inspects tasks through one Redis client."""

    def __init__(
        self,
        redis: Redis,
        cache: SchemaCache,
        *,
        prefix: str = keys.DEFAULT_PREFIX,
        bucket_ms: int = 0,
        portal: Any = None,
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.prefix = prefix
        self.bucket_ms = bucket_ms
        self.portal = portal  # an anyio BlockingPortal when started in a thread
        self._wake = keys.delayed_wake(prefix)
        self._known: set[str] = set()  # queue streams registered with the CLI and the sweeper

    async def enqueue(self, spec: TaskSpec, pending: list[Pending]) -> list[TaskHandle]:
        """Write `pending` tasks of `spec`; one script call per 1,000 (per partition)."""
        by_stream: dict[str, list[int]] = {}
        for index, (_, message, _) in enumerate(pending):
            by_stream.setdefault(spec.stream_for(message), []).append(index)
        handles: list[TaskHandle | None] = [None] * len(pending)
        for stream, indexes in by_stream.items():
            written = await self._enqueue_to(spec, stream, [pending[i] for i in indexes])
            for index, handle in zip(indexes, written, strict=True):
                handles[index] = handle
        return [handle for handle in handles if handle is not None]

    async def _enqueue_to(
        self, spec: TaskSpec, stream: str, pending: list[Pending]
    ) -> list[TaskHandle]:
        if stream not in self._known:
            await self.redis.sadd(keys.task_queues(self.prefix), stream)
            await self.redis.sadd(keys.delayed_targets(self.prefix), stream)
            self._known.add(stream)
        handles: list[TaskHandle] = []
        now_ms = SYSTEM_CLOCK.now_ms()
        store = keys.delayed_store(stream)
        for start in range(0, len(pending), CHUNK):
            chunk = pending[start : start + CHUNK]
            record_keys: list[str] = []
            args: list[bytes | str | int] = [self._wake, self.bucket_ms, 0, 0, len(chunk)]
            traced = tracing.publish_fields(stream)  # telemetry hook: one producer span a call
            carried = traced[1] if traced is not None else []
            for task_id, message, due_ms in chunk:
                schema_id = await self.cache.id_for(message.DESCRIPTOR)
                payload = message.SerializeToString()
                fields = task_fields(schema_id, payload, spec.name, task_id, carried)
                if not spec.tracked:
                    args += task_args(0, fields, due_ms, [])
                    continue
                record_keys.append(keys.task_record(stream, task_id))
                items = records.first_items(
                    task_id=task_id, name=spec.name, queue=spec.queue, now_ms=now_ms,
                    due_ms=due_ms, schema_id=schema_id, payload=payload,
                    retries_allowed=spec.retry.max_attempts - 1, ttl_ms=spec.ttl_ms,
                    result_ttl_ms=spec.result_ttl_ms, target=spec.target or "",
                    description=spec.description,
                )  # fmt: skip
                args += task_args(len(record_keys) + 2, fields, due_ms, items)
            try:
                added = await ENQUEUE(self.redis, [stream, store, *record_keys], args)
            finally:
                if traced is not None:
                    traced[0].end()
            for (task_id, _, _), created in zip(chunk, added, strict=True):
                handles.append(TaskHandle(self, stream, task_id, created=bool(created)))
        return handles

    def handle(self, stream: str, task_id: str) -> TaskHandle:
        """The handle of task `task_id` of the queue stream `stream`."""
        return TaskHandle(self, stream, task_id)

    async def record(self, stream: str, task_id: str) -> TaskRecord | None:
        """The record of a task, or None if there is none (unknown, or past its result_ttl)."""
        fields = await self.redis.hgetall(keys.task_record(stream, task_id))
        return records.parse(cast("dict[bytes, bytes]", fields))

    async def cancel(self, stream: str, task_id: str) -> bool:
        """Cancel a task that has not started; False if it has (or does not exist)."""
        outcome = await CANCEL(
            self.redis, [keys.task_record(stream, task_id)], [SYSTEM_CLOCK.now_ms()]
        )
        return bool(outcome == 1)

    async def retry(self, stream: str, task_id: str) -> bool:
        """Queue a finished task again (error, cancelled, expired); False otherwise."""
        outcome = await RETRY(
            self.redis, [keys.task_record(stream, task_id), stream], [SYSTEM_CLOCK.now_ms()]
        )
        return bool(outcome == 1)

    def from_thread(self, call: Coroutine[Any, Any, T]) -> T:
        """Run `call` on the event loop of `app.start_in_thread()`, from another thread."""
        if self.portal is None:
            call.close()
            raise RuntimeError("the *_sync calls need app.start_in_thread() to be running")
        result: T = self.portal.call(_awaited, call)
        return result


async def _awaited(call: Awaitable[T]) -> T:
    return await call


class TaskHandle:
    """One task: its `id`, and ways to read its state and result or cancel it."""

    __slots__ = ("client", "created", "id", "stream")

    def __init__(self, client: TaskClient, stream: str, task_id: str, *, created: bool = True):
        self.client = client
        self.stream = stream
        self.id = task_id
        self.created = created  # False: enqueue_as found this id existing; nothing was added

    def __repr__(self) -> str:
        return f"TaskHandle({self.id!r}, queue stream {self.stream!r})"

    async def record(self) -> TaskRecord | None:
        """The task's record (every field, its history and reports), or None."""
        return await self.client.record(self.stream, self.id)

    async def state(self) -> str | None:
        """The task's state now (todo, queued, running, done, error, cancelled, expired)."""
        key = keys.task_record(self.stream, self.id)
        state = cast("bytes | None", await self.client.redis.hget(key, "state"))
        return state.decode() if state is not None else None

    async def events(self) -> tuple[Event, ...]:
        """Every state the task went through, with its time."""
        found = await self.record()
        return found.events if found is not None else ()

    async def cancel(self) -> bool:
        """Cancel the task if it has not started yet; True if it is now cancelled."""
        return await self.client.cancel(self.stream, self.id)

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - as asyncio's
        """Wait until the task is finished and return its result (decoded JSON).

        Raises:
            TaskFailed: If it ended in error, cancelled or expired (`.state` says which).
            TimeoutError: If it is not finished within `timeout` seconds.
            LookupError: If there is no such task (or its record is past its result_ttl).
        """
        pause = 0.005
        with anyio.fail_after(timeout):
            while True:
                found = await self.record()
                if found is None:
                    raise LookupError(f"no task {self.id!r} in {self.stream}")
                if found.finished:
                    break
                await anyio.sleep(pause)
                pause = min(pause * 2, 0.2)
        if found.state == "done":
            return json.loads(found.result) if found.result else None
        raise TaskFailed(found.state, self.id, found.error)

    def result_sync(self, timeout: float | None = None) -> Any:
        """`result` from sync code, while `app.start_in_thread()` runs (a Flask view)."""
        return self.client.from_thread(self.result(timeout))
